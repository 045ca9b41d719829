"""An upstream sweep read from its committed per-item rows, for the nodes downstream of a sweep.

A downstream node (the random controls, the comparison table, the audit, SAE steering) reads what
the repository holds, the sweep's `outcomes` rows, rather than the sweep's generation file, which
lives only in a blob cache: so it runs on a fresh checkout that never ran the sweep. A module of
its own, so that the sweeps' code, and with it their committed results' keys, stay as they are."""

from __future__ import annotations

from typing import Any

from pipeline.steering.summary import records_from_items


def committed_sweep(upstream: Any, field: str, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """An upstream sweep's committed per-item rows ("outcomes") in its generation file's shape:
    {"settings": the values of `field` in first-seen order, "records": one score() record per
    setting, "rows": {task: [{"item": {"id", "family"}, "cluster"}]}} (the rows a downstream node
    compares item ids and families on). Rows not matching `where` (e.g. {"set": "h-features"}) are
    left out."""
    items = [r for r in upstream.items("outcomes") if all(r.get(k) == v for k, v in (where or {}).items())]
    if not items:
        raise ValueError(f"upstream {upstream.name!r} commits no outcome rows matching {where}")
    settings, records, _ = records_from_items(items, (field,))
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in items:
        if r[field] == settings[0][0]:
            rows.setdefault(r["task"], []).append({"item": {"id": r["id"], "family": r["family"]},
                                                   "cluster": r["cluster"]})
    return {"settings": [k for k, in settings], "records": records, "rows": rows}
