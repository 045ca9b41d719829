"""Two probes on the same test questions of the same splits, paired: the difference of their
held-out AUROCs with a split-then-item interval. `against` names what the second probe changes
(e.g. {"variant": "question"}: answer tokens against the question's tokens, which are disjoint from
them; {"selection": "univariate"}: the L1 selection against a one-by-one ranking of the same size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ProbeConfig


class Config(ProbeConfig):
    against: dict[str, Any] = Field(description="Probe config fields the second probe changes.")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    first = cfg.upstream(ProbeConfig)
    second = ProbeConfig(**{**first, **cfg.against}).model_dump(mode="json")
    return {"first": ("pipeline.hneurons.probe", first), "second": ("pipeline.hneurons.probe", second)}


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    a = {s["seed"]: s for s in ctx.upstream("first").result.values["splits"]}
    b = {s["seed"]: s for s in ctx.upstream("second").result.values["splits"]}
    triples = []
    for seed, sa in a.items():
        sb = b[seed]
        if sa["test_ids"] != sb["test_ids"]:
            raise RuntimeError(f"split {seed}: the two probes were tested on different questions")
        triples.append((np.array(sa["y"]), np.array(sa["scores"]), np.array(sb["scores"])))
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "test questions"}
    return Result(
        estimates={"first_auroc": stats.hierarchical_auroc([(y, s) for y, s, _ in triples], **kw),
                   "second_auroc": stats.hierarchical_auroc([(y, s) for y, _, s in triples], **kw),
                   "difference": stats.hierarchical_auroc_difference(triples, **kw)},
        values={"first": {"variant": cfg.variant, "selection": cfg.selection},
                "second": {**{"variant": cfg.variant, "selection": cfg.selection}, **cfg.against},
                "n_splits": len(triples), "n_test": int(np.mean([len(y) for y, _, _ in triples])),
                "second_n_neurons": ctx.upstream("second").result.values["n_neurons"],
                "first_n_neurons": ctx.upstream("first").result.values["n_neurons"]},
    )
