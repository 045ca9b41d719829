"""The steering judges against labels made blind to them.

The reference labels are a blind pass over the steering claims' own generations on the task with
room: scripts/draw_audit.py steering-blind lists every generation of the five arms (H-neurons,
negative-weight neurons, DiffMean, ITI heads, SAE latents) on compliance, pushback and false
premises, and of the ITI and DiffMean controls' random directions on compliance (whose "other"
and unreadable answers drive those controls' results), one row per (task, item, text);
`claims audit-sheet` draws 240 unique ones stratified over task, method and strength into a blind
folder (pipeline/data/audits/steering-blind/ for the H-neuron and ITI arms, steering-blind-2/ for
the arms that ran after it), the sheet showing the
question, the context and its answer (compliance), the true answer and the generation, and the key
keeping the judges' verdicts apart. A labeller who saw only the sheet and
pipeline/data/audits/RUBRIC-steering.md filled in labels.csv; sheet.json says who.

The node checks that every audited generation is still one the steering nodes produce now (else
the audit is stale and says which), then measures each rule judge (strict, lenient) against the
blind labels, overall and per task: agreement with a Wilson interval and Cohen's kappa with a
bootstrap interval, and the confusion tables. The per-generation rows are committed (claims
recompute rebuilds the estimates).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import Step

LABELS = {"compliance": ("context", "memory", "other", "format"), "pushback": ("kept", "flipped", "format"),
          "false_premise": ("refused", "answered", "format")}
BLIND_DIR = "pipeline/data/audits/steering-blind"
JUDGES = ("strict", "lenient")
MIN_FOR_KAPPA = 10
ARMS = {  # the steering claims' results on the task with room (scripts/draw_audit.py STEERING_ARMS)
    "H-neurons": ("pipeline.steering.neurons", {}),
    "negative neurons": ("pipeline.steering.neurons", {"arm": "negative"}),
    "DiffMean": ("pipeline.steering.direction_sweep", {"method": "diffmean"}),
    "ITI heads": ("pipeline.steering.direction_sweep", {"method": "iti"}),
    "SAE latents": ("pipeline.saefeatures.steering", {}),
    "ITI random directions": ("pipeline.steering.direction_random", {"method": "iti"}),  # the control's draws
    "DiffMean random directions": ("pipeline.steering.direction_random", {"method": "diffmean"}),
}


class Config(Step):
    profile: str = "embedded"
    seed: int = 42
    memory_shots: int | None = Field(3, description="The steering task whose generations were audited.")
    blind_dir: str = Field(BLIND_DIR, description="The blind sheet, its key and labels (claims.audit).")
    arms: tuple[str, ...] = Field(tuple(ARMS), description="The steering arms whose generations the sheet was "
                                  "drawn from (keys of ARMS).")
    level: float = Field(0.95, gt=0, lt=1)


def _folder(config: dict[str, Any]) -> Path:
    return Path(__file__).resolve().parents[2] / Config(**config).blind_dir


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from claims.provenance import sha256_file

    return {"blind": {p.name: sha256_file(p) for p in sorted(_folder(config).glob("*")) if p.is_file()}}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    import importlib

    cfg = Config(**config)
    out = {}
    unknown = sorted(set(cfg.arms) - set(ARMS))
    if unknown:
        raise ValueError(f"arms: unknown steering arm(s) {unknown}; known: {sorted(ARMS)}")
    for method in cfg.arms:
        experiment, extra = ARMS[method]
        node_config = importlib.import_module(experiment).Config(profile=cfg.profile, seed=cfg.seed,
                                                                 memory_shots=cfg.memory_shots, **extra)
        out[method] = (experiment, node_config.model_dump(mode="json"))
    return out


def blind_rows(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The key joined to the labels: one row per audited generation (its id, task, method,
    strength, the judges' verdicts and the blind label), and sheet.json."""
    from claims.audit import read_key

    meta = json.loads((folder / "sheet.json").read_text())
    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        labels = {r["item"]: (r["label"].strip().lower(), (r.get("note") or "").strip()) for r in csv.DictReader(handle)}
    rows = []
    for row in read_key(folder):
        if row["item"] not in labels:
            raise ValueError(f"{folder.name}/labels.csv: no label for {row['item']}")
        label, note = labels[row["item"]]
        if label not in LABELS[row["task"]]:
            raise ValueError(f"{folder.name}/labels.csv: {row['item']}: {label!r} is not a {row['task']} label "
                             f"({', '.join(LABELS[row['task']])})")
        rows.append({"item": row["item"], "id": row["id"], "task": row["task"], "method": row["method"],
                     "strength": row["strength"], "blind": label, "note": note,
                     **{j: row[j] for j in JUDGES}})
    return rows, meta


def produced(ctx: Any, arms: tuple[str, ...]) -> set[str]:
    """The ids (task|item|text hash) of every generation the steering arms produce now."""
    import hashlib

    out = set()
    for method in arms:  # the sweeps' and the controls' committed per-item rows (what a reader has)
        rows = ctx.upstream(method).items("outcomes")
        out.update(f"{r['task']}|{r['id']}|{hashlib.sha256(r['text'].encode()).hexdigest()[:12]}" for r in rows)
    return out


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """Per judge, agreement and kappa overall and per task, from the per-generation rows."""
    from sklearn.metrics import cohen_kappa_score

    cfg = Config(**config)
    rows = items["generations"]
    out = {}
    for judge in JUDGES:
        for task in (None, *LABELS):
            part = [r for r in rows if task is None or r["task"] == task]
            if not part:
                continue
            auto, hand = np.array([r[judge] for r in part]), np.array([r["blind"] for r in part])
            labels = sorted({*auto, *hand})
            suffix = "" if task is None else f"_{task}"
            unit = "audited generations" if task is None else f"audited {task} generations"
            out[f"{judge}_accuracy{suffix}"] = stats.proportion(int((auto == hand).sum()), len(part), cfg.level,
                                                                unit=unit)
            if len(part) < MIN_FOR_KAPPA or len(labels) < 2:
                continue  # too few generations for a resampled kappa
            kappa = stats.bootstrap_items(
                lambda idx, a=auto, h=hand, lab=labels: float(cohen_kappa_score(h[idx], a[idx], labels=lab)),
                len(part), level=cfg.level, seed=cfg.seed, unit=unit)
            if kappa is not None and kappa.value is not None and not np.isnan(kappa.value):
                out[f"{judge}_kappa{suffix}"] = kappa
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from claims.audit import audit_values

    cfg = Config(**config)
    rows, meta = blind_rows(_folder(config))
    made = produced(ctx, cfg.arms)
    stale = [r["id"] for r in rows if r["id"] not in made]
    if stale:
        raise ValueError(f"the audit is stale: {len(stale)} of {len(rows)} audited generations are no longer what "
                         f"the steering nodes produce (e.g. {stale[:3]}); draw and label a new sheet")
    ctx.save_items("generations", rows)
    values: dict[str, Any] = {"n_audited": len(rows), "blind_dir": cfg.blind_dir,
                              **audit_values(meta, meta.get("labeller", ""))}
    for task, labels in LABELS.items():
        part = [r for r in rows if r["task"] == task]
        values[f"n_{task}"] = len(part)
        for judge in JUDGES:
            values[f"{judge}_confusion_{task}"] = {h: {a: sum(r["blind"] == h and r[judge] == a for r in part)
                                                       for a in labels} for h in labels}
    values["by_method"] = {m: sum(r["method"] == m for r in rows) for m in sorted({r["method"] for r in rows})}
    for judge in JUDGES:
        values[f"{judge}_disagreements"] = [{k: r[k] for k in ("item", "task", "method", "strength", "blind", judge,
                                                                 "note")} for r in rows if r[judge] != r["blind"]]
    return Result(estimates=recompute(ctx.item_rows, config), values=values)
