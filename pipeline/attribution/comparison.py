"""The control of a selection: random subsets of the same size matched to the top arm's composition,
finetuned the same way and scored on the same evaluation items, and trivial filters at the same k
as baselines. This node reads the top arm, the random arm and each filter's arm
(pipeline/attribution/arm.py, each with this config) and reports

  gain              top minus random mean success, paired on evaluation items; the interval
                    resamples the finetunes of each arm and the entity clusters of the items
  gain_over_<f>     top minus filter f's mean success, the same way (the claim's baselines)
  rank_p            (1 + #{random subsets at least as good as the top arm's mean}) / (1 + n_subsets),
                    one-sided (sided: one): how often a matched random subset does as well
  balance           the random arm's standardized mean differences against the top window, per
                    covariate (variant shares, the largest family share, token length, ...);
                    balance_max over the covariates the draws are matched on (the arm's matched_covariates:
                    MATCHED, near zero by construction, and the base adapter's loss where loss_pool matches it),
                    balance_unmatched_max and balance_unmatched_worst over the rest (difficulty, clue
                    count, ambiguity, the shipped model's loss, and the base adapter's where not
                    matched), which nothing holds
  gain_mde          the gain this design detects with 80 % power at the 5 % level (2.8 standard
                    errors, read off the gain's interval), for a reader of a null
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import ComparisonConfig as Config

#: The covariates the matched draw holds fixed (strata), whose largest |SMD| the statements print.
MATCHED = ("clean", "noisy", "off_format", "family", "length")
#: The covariates the draws are not matched on, as a statement names them.
UNMATCHED = {"zero_shot_loss": "the shipped model's loss", "base_loss": "the base adapter's loss", "ambiguous": "the share of ambiguous clues",
             "difficulty": "the entities' obscurity", "n_clues": "the number of clues"}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {name: ("pipeline.attribution.arm", arm) for name, arm in Config(**config).arms().items()}


def matrices(items: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """(runs x items) success per arm from the rows, and the items' entities."""
    arms: dict[str, dict[int, dict[str, int]]] = {}
    entities: dict[str, str] = {}
    for r in items:
        arms.setdefault(r["arm"], {}).setdefault(r["run"], {})[r["item"]] = r["success"]
        entities[r["item"]] = r["entity"]
    order = sorted(entities)
    out = {arm: np.array([[runs[run][i] for i in order] for run in sorted(runs)], dtype=float)
           for arm, runs in arms.items()}
    return out, [entities[i] for i in order]


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The gains from the per-item rows of every arm (`arm`, `run`, `item`, `entity`, `success`)."""
    from pipeline.attribution.estimates import arm_gain, arm_success

    cfg = Config(**config)
    by, entities = matrices(items["outcomes"])
    kw = {"level": cfg.level, "seed": cfg.seed}
    out = {"gain": arm_gain(by["top"], by["random"], entities, **kw),
           "success": arm_success(by["random"], entities, **kw)}
    for name in cfg.filters:
        out[f"gain_over_{name}"] = arm_gain(by["top"], by[name], entities, **kw)
        out[f"{name}_success"] = arm_success(by[name], entities, **kw)
    if cfg.filters:  # the strongest filter: the highest mean success (the first listed on a tie)
        out["gain_over_best_filter"] = out[f"gain_over_{best_filter(cfg.filters, by)}"]
    return out


def best_filter(filters: tuple[str, ...], by: dict[str, np.ndarray]) -> str:
    return max(filters, key=lambda n: (float(by[n].mean()), -filters.index(n)))


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import mde, rank_p

    cfg = Config(**config)
    results = {name: ctx.upstream(name).result for name in cfg.arms()}
    entities = results["top"].values["eval_entities"]
    if any(r.values["eval_entities"] != entities for r in results.values()):
        raise ValueError("the arms were scored on different evaluation items")
    if results["top"].values["reading"] != results["random"].values["reading"]:
        raise ValueError("the arms ranked by different readings")
    rows = []
    for name, result in results.items():
        for run_index, success in enumerate(result.values["success_matrix"]):
            rows += [{"arm": name, "run": run_index, "item": j, "entity": e, "success": int(s)}
                     for j, (e, s) in enumerate(zip(entities, success, strict=True))]
    ctx.save_items("outcomes", rows)
    estimates = recompute(ctx.item_rows, config)
    top_m = np.array(results["top"].values["success_matrix"], dtype=float)
    rates = np.array(results["random"].values["success_matrix"], dtype=float).mean(axis=1)
    top_rate = float(top_m.mean())
    gain = estimates["gain"]
    rand = results["random"].values
    filters = {name: round(float(np.mean(results[name].values["success_matrix"])), 4) for name in cfg.filters}
    matched = tuple(rand["matched_covariates"])  # the balance keys the arm's draw holds, as it reports them
    unmatched = {c: abs(v) for c, v in rand.get("balance", {}).items() if c not in matched}
    worst = max(unmatched, key=unmatched.get, default=None)  # the first of equals, as max() over them was
    values = {"top_success": top_rate, "n_subsets": len(rates), "n_top_runs": len(top_m), "sided": "one",
              "subset_success": [round(float(x), 4) for x in rates],
              "subset_success_min": float(rates.min()), "subset_success_max": float(rates.max()),
              "n_subsets_at_or_above": int((rates >= top_rate).sum()), "rank_p": rank_p(top_rate, rates),
              "top_composition": results["top"].values["composition"], "random_composition": rand["composition"],
              "balance": rand.get("balance", {}), "overlap_with_top": rand.get("overlap_with_top"),
              "balance_max": max((abs(rand["balance"][c]) for c in matched if c in rand.get("balance", {})),
                                 default=None),
              "balance_unmatched_max": unmatched[worst] if worst else None,
              "balance_unmatched_worst": UNMATCHED.get(worst, worst) if worst else None,
              "matched": rand.get("matched", False), "n_borrowed": int(sum(rand.get("borrowed") or [])),
              "reading": results["top"].values["reading"], "start": cfg.start,
              "start_success": results["top"].values["start_success"],
              "gain_mde": mde(gain),
              "filter_success": filters, "n_filter_runs": {n: len(results[n].values["success_matrix"]) for n in filters},
              "filter_overlap_with_top": {n: results[n].values.get("filter_overlap_with_top") for n in filters},
              "filter_composition": {n: results[n].values["composition"] for n in filters},
              "k": cfg.k, "overlap": cfg.overlap, "rank_from": cfg.rank_from, "random_from": cfg.random_from,
              "direction_holds": bool(top_rate > float(rates.mean()))}
    if cfg.filters:
        best = best_filter(cfg.filters, {n: np.array(results[n].values["success_matrix"], dtype=float)
                                         for n in cfg.filters})
        values.update(best_filter=best, best_filter_success=filters[best])
    return Result(estimates=estimates, values=values)
