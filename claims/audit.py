"""Blind audits of a judge: the labelling sheet never shows a judge's verdict.

`draw` samples unique items (stratified, seeded) from the rows a judge scored and splits them in
two: the **sheet** the labeller fills in (an opaque item number, the fields to read, an empty
`label` column) and the **key** (item number -> the row's id and the judges' verdicts), kept in
another file. `write` puts them in a folder with `sheet.json`, which records that the sheet was
drawn blind, what was hidden and how many unique items it holds. After labelling, `agreement`
joins the labels to the key and measures agreement per judge (and per stratum); `audit_values`
gives the fields an audit claim's result must carry (labeller, blind, unique_items), which
`verify` checks against the spec's `audit: {min_unique: ...}`.

    python -m claims audit-sheet generations.jsonl --id id --show question,answer \\
        --hide judge_strict,judge_lenient --strata task,method --n 200 --out audits/steering
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from claims.errors import ClaimsError

SHEET, KEY, META = "sheet.csv", "key.csv", "sheet.json"


def draw(rows: list[dict[str, Any]], *, id_field: str, show: list[str], hide: list[str], n: int,
         strata: list[str] | None = None, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sheet, key): `n` unique items drawn as evenly as the strata allow; the sheet shows only
    `show`, the key keeps the id, the strata and the hidden verdicts."""
    strata = strata or []
    leaked = sorted(set(show) & set(hide))
    if leaked:
        raise ClaimsError(f"--show {', '.join(leaked)}: a field the labeller sees cannot be a hidden verdict")
    for field in [id_field, *show, *hide, *strata]:
        missing = next((i for i, r in enumerate(rows) if field not in r), None)
        if missing is not None:
            raise ClaimsError(f"row {missing} has no field {field!r}")
    unique: dict[Any, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(json.dumps(row[id_field], sort_keys=True), row)  # one judged item, once
    if len(unique) < n:
        raise ClaimsError(f"only {len(unique)} unique items (by {id_field!r}), fewer than the {n} asked for")
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in unique.values():
        groups[tuple(str(row[s]) for s in strata)].append(row)
    rng = np.random.default_rng(seed)
    order = {k: [g[i] for i in rng.permutation(len(g))] for k, g in sorted(groups.items())}
    chosen: list[dict[str, Any]] = []
    while len(chosen) < n:  # round robin over strata: as even as their sizes allow
        for key in order:
            if order[key] and len(chosen) < n:
                chosen.append(order[key].pop())
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # the sheet's order says nothing
    sheet, key = [], []
    for i, row in enumerate(chosen, 1):
        item = f"item-{i:04d}"
        sheet.append({"item": item, **{f: row[f] for f in show}, "label": ""})
        key.append({"item": item, "id": row[id_field], **{s: row[s] for s in strata}, **{h: row[h] for h in hide}})
    return sheet, key


def write(folder: Path, sheet: list[dict[str, Any]], key: list[dict[str, Any]], *, hide: list[str],
          strata: list[str], seed: int) -> None:
    """The sheet, the key (apart) and sheet.json (how the sheet was drawn)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in ((SHEET, sheet), (KEY, key)):
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()}
                             for r in rows)
    meta = {"blind": True, "drawn_by": "claims.audit", "unique_items": len(sheet), "hidden": hide,
            "strata": strata, "seed": seed, "labeller": ""}
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_labels(folder: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(item -> label) from a filled-in sheet, and sheet.json; a blank label is an error."""
    meta_path = folder / META
    if not meta_path.is_file():
        raise ClaimsError(f"{meta_path}: no sheet.json: the sheet was not drawn by claims.audit (blind)")
    meta = json.loads(meta_path.read_text())
    with open(folder / SHEET, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    blank = [r["item"] for r in rows if not (r.get("label") or "").strip()]
    if blank:
        raise ClaimsError(f"{folder / SHEET}: {len(blank)} items have no label yet (first: {blank[0]})")
    return {r["item"]: r["label"].strip() for r in rows}, meta


def read_key(folder: Path) -> list[dict[str, str]]:
    with open(folder / KEY, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def agreement(labels: dict[str, str], key: list[dict[str, str]], judge: str,
              by: str | None = None) -> dict[str, dict[str, float | int]]:
    """Share of items where the judge's verdict equals the label, overall and per value of `by`
    (counts; the caller attaches intervals with its own statistics)."""
    out: dict[str, dict[str, float | int]] = {}
    groups: dict[str, list[bool]] = defaultdict(list)
    for row in key:
        same = str(row[judge]).strip().lower() == labels[row["item"]].strip().lower()
        groups["all"].append(same)
        if by:
            groups[f"{by}={row[by]}"].append(same)
    for name, hits in groups.items():
        out[name] = {"n": len(hits), "agree": int(sum(hits)), "share": sum(hits) / len(hits)}
    return out


def audit_values(meta: dict[str, Any], labeller: str) -> dict[str, Any]:
    """What an audit claim's result reports: who labelled, whether blind, how many unique items."""
    return {"labeller": labeller, "blind": bool(meta.get("blind")) and meta.get("drawn_by") == "claims.audit",
            "unique_items": int(meta.get("unique_items", 0))}
