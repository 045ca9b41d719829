"""The automatic judge against labels made blind to it.

A committed sample of sampled answers (pipeline/data/audits/detection-judge.jsonl), each with the
judge's outcome (correct, wrong, format). The reference labels are the blind pass in
pipeline/data/audits/detection-blind/: `claims audit-sheet` drew a sheet of the 200 unique answers
with the question, gold answer, aliases and answer only (the judge's outcome and the earlier hand
labels kept apart in key.csv), and a labeller who saw only that sheet and the rubric
(pipeline/data/audits/RUBRIC.md) filled in labels.csv; sheet.json says who. The earlier hand labels,
written with the judge's outcome in sight, are kept and compared too, as a value.

The audit checks that every audited answer is still what the sampling step produces now (else the
audit is stale and must be redone, and this node says which), then measures the judge against the
blind labels: agreement with a Wilson interval, Cohen's kappa with a bootstrap interval, and the
confusion table. The per-answer rows are committed (claims recompute rebuilds the estimates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import SampleConfig
from pipeline.hneurons.judge import OUTCOMES

DEFAULT_FILE = "pipeline/data/audits/detection-judge.jsonl"
BLIND_DIR = "pipeline/data/audits/detection-blind"


class Config(SampleConfig):
    audit_file: str = Field(DEFAULT_FILE, description="The audited sample, relative to the project root.")
    blind_dir: str = Field(BLIND_DIR, description="The blind labelling sheet, its key and labels (claims.audit).")
    level: float = Field(0.95, gt=0, lt=1)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"labels": ("pipeline.hneurons.sample", Config(**config).upstream(SampleConfig))}


def _path(config: dict[str, Any]) -> Path:
    return Path(__file__).resolve().parents[2] / Config(**config).audit_file


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from claims.provenance import sha256_file

    path = _path(config)
    blind = Path(__file__).resolve().parents[2] / Config(**config).blind_dir
    return {"audit_file": sha256_file(path) if path.is_file() else "missing",
            "blind": {p.name: sha256_file(p) for p in sorted(blind.glob("*")) if p.is_file()}}


def read_audit(path: Path) -> list[dict[str, Any]]:
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("hand") not in OUTCOMES:
            raise ValueError(f"{path.name}:{lineno}: hand label {entry.get('hand')!r} is not one of {OUTCOMES}")
        entries.append(entry)
    return entries


def blind_labels(cfg: Config) -> tuple[dict[tuple[str, int], str], dict[str, Any]]:
    """(id, sample) -> blind label, and the sheet's metadata (who labelled, blind, unique items)."""
    from claims.audit import read_key, read_labels

    folder = Path(__file__).resolve().parents[2] / cfg.blind_dir
    labels, meta = read_labels_file(folder) if (folder / "labels.csv").is_file() else read_labels(folder)
    out = {}
    for row in read_key(folder):
        qid, _, sample = row["id"].rpartition("#")
        label = labels[row["item"]]
        if label not in OUTCOMES:
            raise ValueError(f"{cfg.blind_dir}/labels.csv: {row['item']}: label {label!r} is not one of {OUTCOMES}")
        out[(qid, int(sample))] = label
    return out, meta


def read_labels_file(folder: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """labels.csv (item,label,note) written by the labeller beside the sheet, and sheet.json."""
    import csv

    with open(folder / "labels.csv", newline="", encoding="utf-8") as handle:
        labels = {r["item"]: r["label"].strip() for r in csv.DictReader(handle)}
    return labels, json.loads((folder / "sheet.json").read_text())


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """Agreement, kappa and per-class recall from the per-answer rows (auto, blind label)."""
    from sklearn.metrics import cohen_kappa_score

    cfg = Config(**config)
    rows = items["answers"]
    auto = np.array([r["auto"] for r in rows])
    hand = np.array([r["blind"] for r in rows])
    agree = auto == hand
    kappa = stats.bootstrap_items(lambda idx: float(cohen_kappa_score(hand[idx], auto[idx], labels=list(OUTCOMES))),
                                  len(rows), level=cfg.level, seed=cfg.seed, unit="audited answers")
    per_class = {o: stats.proportion(int((agree & (hand == o)).sum()), int((hand == o).sum()), cfg.level,
                                     unit=f"answers labelled {o} blind") for o in OUTCOMES}
    return {"agreement": stats.proportion(int(agree.sum()), len(rows), cfg.level, unit="audited answers"),
            "kappa": kappa, **{f"recall_{o}": est for o, est in per_class.items() if est.value is not None}}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from claims.audit import audit_values

    cfg = Config(**config)
    entries = read_audit(_path(config))
    blind, meta = blind_labels(cfg)
    missing = [f"{e['id']}#{e['sample']}" for e in entries if (e["id"], e["sample"]) not in blind]
    if missing:
        raise ValueError(f"{cfg.blind_dir}: {len(missing)} audited answers have no blind label (e.g. {missing[:3]})")
    rows = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    stale = [e["id"] for e in entries if e["id"] not in rows or rows[e["id"]]["samples"][e["sample"]] != e["answer"]
             or rows[e["id"]]["outcomes"][e["sample"]] != e["auto"]]
    if stale:
        raise ValueError(f"the audit is stale: {len(stale)} of {len(entries)} audited answers are no longer what the "
                         f"sampling step produces (e.g. {stale[:3]}); draw and label a new sample")
    ctx.save_items("answers", [{"id": e["id"], "sample": e["sample"], "family": e.get("family"),
                                "question": e["question"], "gold": e["gold"], "answer": e["answer"], "auto": e["auto"],
                                "blind": blind[(e["id"], e["sample"])], "sighted": e["hand"]} for e in entries])
    auto = np.array([e["auto"] for e in entries])
    hand = np.array([blind[(e["id"], e["sample"])] for e in entries])
    sighted = np.array([e["hand"] for e in entries])
    agree = auto == hand
    confusion = {h: {a: int(((hand == h) & (auto == a)).sum()) for a in OUTCOMES} for h in OUTCOMES}
    disagreements = [{**{k: e[k] for k in ("id", "question", "gold", "answer", "auto") if k in e}, "blind": h}
                     for e, h, ok in zip(entries, hand, agree, strict=True) if not ok]
    return Result(
        estimates=recompute(ctx.item_rows, config),
        values={"n_audited": len(entries), "n_disagree": int((~agree).sum()), "confusion": confusion,
                "blind_counts": {o: int((hand == o).sum()) for o in OUTCOMES},
                "auto_counts": {o: int((auto == o).sum()) for o in OUTCOMES},
                "sighted_agreement_with_blind": float((sighted == hand).mean()),
                "disagreements": disagreements, "audit_file": cfg.audit_file, "blind_dir": cfg.blind_dir,
                **audit_values(meta, meta.get("labeller", "")),
                "unique_items": len({(e["id"], e["sample"]) for e in entries})},
    )
