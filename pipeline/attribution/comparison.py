"""The control of a selection: random subsets of the same size, finetuned the same way, scored on
the same evaluation items. This node reads the top arm (this config with arm: top) and the random
arm (this config with arm: random) and reports

  gain      top minus random mean success, paired on evaluation items; the interval resamples the
            finetunes of each arm and the entity clusters of the evaluation items;
  rank_p    (1 + #{random subsets at least as good as the top arm's mean}) / (1 + n_subsets): with
            8 subsets it cannot fall below 1/9, so the verdict rests on the gain's interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import ComparisonConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    top, rand = Config(**config).arms()
    return {"top": ("pipeline.attribution.continuation", top), "random": ("pipeline.attribution.continuation", rand)}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import arm_gain, rank_p

    cfg = Config(**config)
    top, rand = ctx.upstream("top").result, ctx.upstream("random").result
    entities = top.values["eval_entities"]
    if rand.values["eval_entities"] != entities:
        raise ValueError("the two arms were scored on different evaluation items")
    top_m = np.array(top.values["success_matrix"], dtype=float)
    rand_m = np.array(rand.values["success_matrix"], dtype=float)
    rates = rand_m.mean(axis=1)
    top_rate = float(top_m.mean())
    return Result(
        estimates={"gain": arm_gain(top_m, rand_m, entities, level=cfg.level, seed=cfg.seed),
                   "success": rand.estimates["success"]},
        values={"top_success": top_rate, "n_subsets": len(rand_m), "n_top_runs": len(top_m),
                "subset_success": [round(float(x), 4) for x in rates],
                "subset_success_min": float(rates.min()), "subset_success_max": float(rates.max()),
                "n_subsets_at_or_above": int((rates >= top_rate).sum()), "rank_p": rank_p(top_rate, rates),
                "top_composition": top.values["composition"], "random_composition": rand.values["composition"],
                "k": cfg.k, "overlap": cfg.overlap, "rank_from": cfg.rank_from, "random_from": cfg.random_from,
                "direction_holds": bool(top_rate > float(rates.mean()))},
    )
