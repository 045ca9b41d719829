"""The concept sentences (pipeline/saefeatures/data/concepts/, written for this project, labelled
0-3 by the rubric in its README), and the second-pass hand check of a sample of them.

As an experiment node this is the audit: the second-pass labels of audit.csv against the first
labels, with the share that agree exactly (Wilson interval), the share within one point, and
Cohen's kappa with quadratic weights (ordinal labels; chance agreement removed).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from claims import Result
from claims.errors import ExperimentError
from pipeline.saefeatures.config import Step

DATA = Path(__file__).with_name("data") / "concepts"
CONCEPTS = ("dishonesty", "aggression", "bravery", "kindness")
LABELS = (0, 1, 2, 3)


class Config(Step):
    profile: str = Field("embedded", description="Unused (the data is the same on every profile); accepted "
                         "so that --profile applies to every claim.")
    concepts: tuple[str, ...] = Field(CONCEPTS, min_length=1)
    seed: int = Field(42)
    level: float = Field(0.95, gt=0, lt=1)


def read_concept(concept: str, folder: Path = DATA) -> list[dict[str, Any]]:
    """Rows {id, concept, label, sentence} of one concept's file, checked for balance."""
    path = folder / f"{concept}.csv"
    if not path.is_file():
        raise ExperimentError(f"no sentences for concept {concept!r}: {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{"id": r["id"], "concept": concept, "label": int(r["label"]), "sentence": r["sentence"].strip()}
                for r in csv.DictReader(handle)]
    counts = {label: sum(r["label"] == label for r in rows) for label in LABELS}
    if len(set(counts.values())) != 1 or sum(counts.values()) != len(rows):
        raise ExperimentError(f"{path}: labels must be 0-3 and balanced, found {counts}")
    if len({r["id"] for r in rows}) != len(rows):
        raise ExperimentError(f"{path}: duplicate ids")
    return rows


def read_all(concepts: tuple[str, ...], folder: Path = DATA) -> list[dict[str, Any]]:
    return [r for c in concepts for r in read_concept(c, folder)]


def data_hash(folder: Path = DATA) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.csv")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    return {"concept_data": data_hash()}


def weighted_kappa(a: list[int], b: list[int]) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(a, b, weights="quadratic", labels=list(LABELS)))


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline import stats

    cfg = Config(**config)
    first = {r["id"]: r for r in read_all(cfg.concepts)}
    with (DATA / "audit.csv").open(newline="", encoding="utf-8") as handle:
        audit = [r for r in csv.DictReader(handle) if r["concept"] in cfg.concepts]
    unlabelled = [r["id"] for r in audit if not r["second_label"].strip()]
    if unlabelled:
        raise ExperimentError(f"audit.csv: {len(unlabelled)} sampled sentences have no second_label yet "
                              f"(first: {unlabelled[0]})")
    stale = [r["id"] for r in audit if r["id"] not in first or first[r["id"]]["sentence"] != r["sentence"]]
    if stale:
        raise ExperimentError(f"audit.csv is stale: {len(stale)} sampled sentences no longer match the data "
                              f"(first: {stale[0]}); draw the sample again (scripts/draw_concept_audit.py)")
    a = [first[r["id"]]["label"] for r in audit]
    b = [int(r["second_label"]) for r in audit]
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    import numpy as np

    kappa = stats.bootstrap_items(lambda idx: weighted_kappa([a[i] for i in idx], [b[i] for i in idx]), len(a),
                                  level=cfg.level, seed=cfg.seed, unit="sampled sentences")
    confusion = [[sum(x == i and y == j for x, y in zip(a, b, strict=True)) for j in LABELS] for i in LABELS]
    return Result(
        estimates={"agreement": stats.proportion(agree, len(a), cfg.level, unit="sampled sentences"),
                   "within_one": stats.proportion(sum(abs(x - y) <= 1 for x, y in zip(a, b, strict=True)), len(a),
                                                  cfg.level, unit="sampled sentences"),
                   "kappa": kappa},
        values={"n_sentences": len(first), "n_audited": len(a), "n_disagree": len(a) - agree,
                "per_concept": {c: sum(r["concept"] == c for r in first.values()) for c in cfg.concepts},
                "confusion": confusion, "confusion_axes": "rows: first label 0-3; columns: second pass 0-3",
                "disagreements": [{"id": r["id"], "sentence": r["sentence"], "first": x, "second": y}
                                  for r, x, y in zip(audit, a, b, strict=True) if x != y],
                "mean_abs_difference": float(np.mean(np.abs(np.array(a) - np.array(b))))})
