"""The concept sentences, written for this project and labelled 0-3 by a rubric, and the second
labelling pass that checks them. Two versions of the data:

  v1  pipeline/saefeatures/data/concepts/     64 sentences per concept; a second pass by the same
                                              author on a sample (audit.csv), not blind
  v2  pipeline/saefeatures/data/concepts_v2/  200 sentences per concept in 50 length-matched sets
                                              (the four labels of a set have the same token count);
                                              a blind second pass by a different labeller on all
                                              800 sentences (blind_sheet.csv -> second_labels.csv,
                                              joined through key.csv)

As an experiment node this is the audit: the second-pass labels against the first, with the share
that agree exactly (Wilson interval), the share within one point, and Cohen's kappa with quadratic
weights (ordinal labels; chance agreement removed), overall and (v2) per concept.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from claims import Result
from claims.errors import ExperimentError
from pipeline.saefeatures.config import Step

DATA = Path(__file__).with_name("data") / "concepts"
DATA_V2 = Path(__file__).with_name("data") / "concepts_v2"
CONCEPTS = ("dishonesty", "aggression", "bravery", "kindness")
LABELS = (0, 1, 2, 3)


class Config(Step):
    profile: str = Field("embedded", description="Unused (the data is the same on every profile); accepted "
                         "so that --profile applies to every claim.")
    concepts: tuple[str, ...] = Field(CONCEPTS, min_length=1)
    concept_data: Literal["v1", "v2"] = Field("v2", description="Which concept data (see the module doc).")
    seed: int = Field(42)
    level: float = Field(0.95, gt=0, lt=1)


def folder(version: str) -> Path:
    """The concept data folder of a version (read at call time, so tests can point it elsewhere)."""
    return {"v1": DATA, "v2": DATA_V2}[version]


def read_concept(concept: str, folder: Path = DATA) -> list[dict[str, Any]]:
    """Rows {id, concept, label, sentence, set} of one concept's file, checked for balance (`set`: the
    length-matched set of v2 data, None for v1)."""
    path = folder / f"{concept}.csv"
    if not path.is_file():
        raise ExperimentError(f"no sentences for concept {concept!r}: {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{"id": r["id"], "concept": concept, "label": int(r["label"]), "sentence": r["sentence"].strip(),
                 "set": int(r["set"]) if r.get("set") else None} for r in csv.DictReader(handle)]
    counts = {label: sum(r["label"] == label for r in rows) for label in LABELS}
    if len(set(counts.values())) != 1 or sum(counts.values()) != len(rows):
        raise ExperimentError(f"{path}: labels must be 0-3 and balanced, found {counts}")
    if len({r["id"] for r in rows}) != len(rows):
        raise ExperimentError(f"{path}: duplicate ids")
    return rows


def read_all(concepts: tuple[str, ...], folder: Path = DATA) -> list[dict[str, Any]]:
    return [r for c in concepts for r in read_concept(c, folder)]


def data_hash(where: Path = DATA) -> str:
    digest = hashlib.sha256()
    for path in sorted(where.glob("*.csv")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    return {"concept_data": data_hash(folder(Config(**config).concept_data))}


def weighted_kappa(a: list[int], b: list[int]) -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(a, b, weights="quadratic", labels=list(LABELS)))


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    return run_v2(cfg, ctx) if cfg.concept_data == "v2" else run_v1(cfg)


def run_v1(cfg: Config) -> Result:
    from pipeline import stats

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


V2_LABELLER = ("a separate model instance (an AI assistant started fresh for the task, not the one that wrote "
               "and first labelled the sentences), given only RUBRIC.md and the shuffled blind sheet")


def second_pass(cfg: Config) -> list[dict[str, Any]]:
    """v2: every sentence with its first label and the blind second label, joined through key.csv."""
    where = folder("v2")
    rows = {r["id"]: r for r in read_all(cfg.concepts, where)}
    with (where / "key.csv").open(newline="", encoding="utf-8") as handle:
        key = {r["item"]: r["id"] for r in csv.DictReader(handle)}
    with (where / "second_labels.csv").open(newline="", encoding="utf-8") as handle:
        second = {r["item"]: r["label"].strip() for r in csv.DictReader(handle)}
    unknown = sorted(set(second) - set(key))
    if unknown:
        raise ExperimentError(f"{where / 'second_labels.csv'}: {len(unknown)} items are not in key.csv "
                              f"(first: {unknown[0]})")
    by_id = {key[item]: label for item, label in second.items()}
    missing = [i for i in rows if i not in by_id or by_id[i] not in {"0", "1", "2", "3"}]
    if missing:
        raise ExperimentError(f"{where / 'second_labels.csv'}: {len(missing)} sentences have no second label "
                              f"0-3 (first: {missing[0]})")
    return [{"id": i, "concept": r["concept"], "set": r["set"], "first": r["label"], "second": int(by_id[i])}
            for i, r in rows.items()]


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """Agreement, within-one and quadratic kappa, overall and per concept, from the per-sentence rows."""
    from pipeline import stats

    cfg = Config(**config)
    rows = items["labels"]
    out = {}
    for name, part in [("", rows)] + [(f"_{c}", [r for r in rows if r["concept"] == c]) for c in cfg.concepts]:
        a, b = [r["first"] for r in part], [r["second"] for r in part]
        out[f"agreement{name}"] = stats.proportion(sum(x == y for x, y in zip(a, b, strict=True)), len(a), cfg.level,
                                                   unit="sentences")
        out[f"kappa{name}"] = stats.bootstrap_items(
            lambda idx, a=a, b=b: weighted_kappa([a[i] for i in idx], [b[i] for i in idx]), len(a),
            level=cfg.level, seed=cfg.seed, unit="sentences")
    out["within_one"] = stats.proportion(sum(abs(r["first"] - r["second"]) <= 1 for r in rows), len(rows), cfg.level,
                                         unit="sentences")
    return out


def run_v2(cfg: Config, ctx: Any) -> Result:
    rows = second_pass(cfg)
    if ctx is not None and hasattr(ctx, "save_items"):
        ctx.save_items("labels", rows)
    estimates = recompute({"labels": rows}, cfg.model_dump(mode="json"))
    confusion = [[sum(r["first"] == i and r["second"] == j for r in rows) for j in LABELS] for i in LABELS]
    return Result(estimates=estimates, values={
        "concept_data": "v2", "n_sentences": len(rows), "n_audited": len(rows), "unique_items": len(rows),
        "n_disagree": sum(r["first"] != r["second"] for r in rows), "blind": True, "labeller": V2_LABELLER,
        "per_concept": {c: sum(r["concept"] == c for r in rows) for c in cfg.concepts},
        "confusion": confusion, "confusion_axes": "rows: first label 0-3; columns: blind second pass 0-3",
        "mean_abs_difference": sum(abs(r["first"] - r["second"]) for r in rows) / len(rows)})
