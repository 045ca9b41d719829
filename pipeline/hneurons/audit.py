"""The automatic judge against labels written by hand.

A committed sample of sampled answers (pipeline/data/audits/detection-judge.jsonl), each with the
judge's outcome (correct, wrong, format) and an outcome written by a person against the rubric in
pipeline/data/audits/RUBRIC.md. The audit checks that every audited answer is still what the
sampling step produces now (else the audit is stale and must be redone, and this node says which),
then measures the judge against the hand labels: agreement with a Wilson interval, Cohen's kappa
with a bootstrap interval, and the confusion table.
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


class Config(SampleConfig):
    audit_file: str = Field(DEFAULT_FILE, description="The hand-labelled sample, relative to the project root.")
    level: float = Field(0.95, gt=0, lt=1)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"labels": ("pipeline.hneurons.sample", Config(**config).upstream(SampleConfig))}


def _path(config: dict[str, Any]) -> Path:
    return Path(__file__).resolve().parents[2] / Config(**config).audit_file


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from claims.provenance import sha256_file

    path = _path(config)
    return {"audit_file": sha256_file(path) if path.is_file() else "missing"}


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


def run(config: dict[str, Any], ctx: Any) -> Result:
    from sklearn.metrics import cohen_kappa_score

    cfg = Config(**config)
    entries = read_audit(_path(config))
    rows = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    stale = [e["id"] for e in entries if e["id"] not in rows or rows[e["id"]]["samples"][e["sample"]] != e["answer"]
             or rows[e["id"]]["outcomes"][e["sample"]] != e["auto"]]
    if stale:
        raise ValueError(f"the audit is stale: {len(stale)} of {len(entries)} audited answers are no longer what the "
                         f"sampling step produces (e.g. {stale[:3]}); draw and label a new sample")
    auto = np.array([e["auto"] for e in entries])
    hand = np.array([e["hand"] for e in entries])
    agree = auto == hand
    kappa = stats.bootstrap_items(lambda idx: float(cohen_kappa_score(hand[idx], auto[idx], labels=list(OUTCOMES))),
                                  len(entries), level=cfg.level, seed=cfg.seed, unit="audited answers")
    confusion = {h: {a: int(((hand == h) & (auto == a)).sum()) for a in OUTCOMES} for h in OUTCOMES}
    per_class = {o: stats.proportion(int((agree & (hand == o)).sum()), int((hand == o).sum()), cfg.level,
                                     unit=f"answers labelled {o} by hand") for o in OUTCOMES}
    disagreements = [{k: e[k] for k in ("id", "question", "gold", "answer", "auto", "hand", "note") if k in e}
                     for e, ok in zip(entries, agree, strict=True) if not ok]
    return Result(
        estimates={"agreement": stats.proportion(int(agree.sum()), len(entries), cfg.level, unit="audited answers"),
                   "kappa": kappa,
                   **{f"recall_{o}": est for o, est in per_class.items() if est.value is not None}},
        values={"n_audited": len(entries), "n_disagree": int((~agree).sum()), "confusion": confusion,
                "hand_counts": {o: int((hand == o).sum()) for o in OUTCOMES},
                "auto_counts": {o: int((auto == o).sum()) for o in OUTCOMES},
                "disagreements": disagreements, "audit_file": cfg.audit_file},
    )
