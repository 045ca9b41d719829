"""Per-item rows: what an estimate is computed from (ids, labels, scores, outcomes, generated
text), committed beside the result so that a reader can recompute it from the repository alone.

An experiment saves them with `ctx.save_items(name, rows)` (a list of flat JSON objects) and
exposes `recompute(items, config)`, the function that turns rows into estimates; `run` should
return what `recompute` gives on the rows it saved (the runner checks that it does). They are
written as `artifacts/<experiment>/<config-hash>.items/<name>.jsonl.gz` (gzip with no timestamp,
one JSON object per line, sorted keys: the same rows give the same bytes), each at most
MAX_BYTES compressed, and hashed in the result's sidecar: `verify --no-run` finds an edited row.

`python -m claims recompute ID` reads the rows, calls `recompute` and compares its estimates with
the committed result.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from claims.errors import ExperimentError

#: The most one items file may take, compressed (a result's rows are split into several names if needed).
MAX_BYTES = 8 * 2**20
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SUFFIX = ".jsonl.gz"


def encode(name: str, rows: Any) -> bytes:
    """Rows as deterministic gzipped JSON Lines; refuses what could not be read back the same way."""
    if not NAME.match(name):
        raise ExperimentError(f"items name {name!r}: use lower-case letters, digits, - and _ (at most 64)")
    if not isinstance(rows, list | tuple) or not all(isinstance(r, dict) for r in rows):
        raise ExperimentError(f"items {name!r}: rows must be a list of flat objects (dicts)")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9, filename="") as handle:
        for i, row in enumerate(rows):
            try:
                line = json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise ExperimentError(f"items {name!r} row {i}: {exc} (plain numbers, text, true/false, null)") from None
            handle.write(line.encode("utf-8") + b"\n")
    data = buffer.getvalue()
    if len(data) > MAX_BYTES:
        raise ExperimentError(f"items {name!r}: {len(data) / 2**20:.1f} MiB compressed, over the cap of "
                              f"{MAX_BYTES // 2**20} MiB per file; split the rows or drop what no estimate reads")
    return data


def decode(data: bytes, where: str) -> list[dict[str, Any]]:
    try:
        text = gzip.decompress(data).decode("utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise ExperimentError(f"{where}: not gzipped JSON lines ({type(exc).__name__})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ExperimentError(f"{where}: a line is not a JSON object")
    return rows


def folder(result_path: Path) -> Path:
    """Where a result's rows live: beside it, `<config-hash>.items/`."""
    return result_path.with_name(result_path.stem + ".items")


def read(root: Path, sidecar: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every items table a sidecar lists, as rows (the caller has checked the hashes)."""
    out = {}
    for name, meta in (sidecar.get("items") or {}).items():
        path = root / meta["path"]
        out[name] = decode(path.read_bytes(), meta["path"])
    return out


def close(a: float | None, b: float | None, rel: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Equal up to float noise (both None counts as equal)."""
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def compare(stored: Any, recomputed: Any) -> list[tuple[str, str, str, bool]]:
    """(estimate, committed, recomputed, equal) for each estimate `recompute` gave that the stored
    result holds (value and both interval ends)."""
    from claims.result import Result

    if isinstance(recomputed, Result):
        recomputed = recomputed.estimates
    rows = []
    for name, est in sorted(recomputed.items()):
        old = stored.estimates.get(name)
        if old is None:
            rows.append((name, "-", _show(est.value, est.ci), False))
            continue
        same = close(old.value, est.value) and (old.ci is None) == (est.ci is None) and \
            (old.ci is None or (close(old.ci[0], est.ci[0]) and close(old.ci[1], est.ci[1])))
        rows.append((name, _show(old.value, old.ci), _show(est.value, est.ci), same))
    return rows


def _show(value: float | None, ci: Any) -> str:
    v = "-" if value is None else f"{value:.6g}"
    return v + (f" [{ci[0]:.6g}, {ci[1]:.6g}]" if ci else "")
