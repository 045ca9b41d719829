"""Label statistics of the sampling step: how often the k samples agree, the class balance, the
format failures, the per-family breakdown and truncated answers. A light node, so that the
statistics can change without resampling."""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import SampleConfig
from pipeline.hneurons.config import SampleConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"labels": ("pipeline.hneurons.sample", Config(**config).upstream(SampleConfig))}


def run(config: dict[str, Any], ctx: Any) -> Result:
    up = ctx.upstream("labels")
    result = summarize(up.json("labels"), Config(**config))
    result.values["model_id"] = up.result.values["model_id"]
    return result


def summarize(rows: list[dict[str, Any]], cfg: SampleConfig) -> Result:
    n = len(rows)
    labels = Counter(r["label"] for r in rows)
    faithful, hallucinated, fmt = labels["faithful"], labels["hallucinated"], labels["format_failure"]
    labelled = faithful + hallucinated
    samples = [c for r in rows for c in r["correct"]]
    outcomes = Counter(o for r in rows for o in r["outcomes"])
    truncated = sum(f == "length" for r in rows for f in r["finish"])
    families: dict[str, dict[str, int]] = {}
    for r in rows:
        fam = families.setdefault(r["family"], {"questions": 0, "faithful": 0, "hallucinated": 0,
                                                "format_failure": 0, "mixed": 0})
        fam["questions"] += 1
        fam[r["label"] or "mixed"] += 1
    for fam in families.values():
        fam["balanced_pairs"] = min(fam["faithful"], fam["hallucinated"])
    greedy = [r for r in rows if "greedy" in r]
    return Result(
        estimates={
            "sample_accuracy": stats.proportion(sum(samples), len(samples), unit="sampled answers"),
            "consistency_rate": stats.proportion(labelled, n, unit="questions"),
            "hallucination_share": stats.proportion(hallucinated, labelled, unit="labelled questions"),
            "format_failure_rate": stats.proportion(fmt, n, unit="questions"),
            "greedy_agrees_with_label": stats.proportion(
                sum((r["greedy_outcome"] == "correct") == (r["label"] == "faithful") for r in greedy), len(greedy),
                unit="labelled questions"),
        },
        values={"n_questions": n, "n_faithful": faithful, "n_hallucinated": hallucinated,
                "n_format_failures": fmt, "n_mixed": labels[None], "n_labelled": labelled, "k": cfg.k,
                "n_samples": len(samples), "n_format_samples": outcomes["format"], "n_truncated": truncated,
                "n_families": len(families), "families": families,
                "balanced_pairs": sum(f["balanced_pairs"] for f in families.values()),
                "format_reasons": dict(Counter(x for r in rows for x in r["reasons"] if x))},
    )
