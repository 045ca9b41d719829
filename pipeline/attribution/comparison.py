"""The control of a selection: random subsets of the same size matched to the top arm's composition,
finetuned the same way and scored on the same evaluation items, and trivial filters at the same k
as baselines. This node reads the top arm, the random arm and each filter's arm
(pipeline/attribution/arm.py, each with this config) and reports

  gain              top minus random mean success, paired on evaluation items; the interval
                    resamples the finetunes of each arm and the entity clusters of the items
  gain_over_<f>     top minus filter f's mean success, the same way (the claim's baselines)
  rank_p_by_seed    one-sided (sided: one), stratified by training seed: each random subset is set
                    against the top arm's run with its own training seed (subset r trains with seed
                    train_seeds[r mod 3], as the top arm's runs do), c_s = #{subsets of seed s at least
                    as good as the top arm's seed-s run}; under the null each c_s is uniform on 0..n_s,
                    so the p is P(sum of independent uniforms <= sum c_s), exact (`stratified_rank_p`;
                    n_subsets_at_or_above_by_seed = sum c_s)
  rank_p            the first rounds' statistic, kept: (1 + #{random subsets at least as good as the
                    top arm's mean over its seeds}) / (1 + n_subsets), which sets a mean with less
                    seed noise against single-seed draws
  balance           the random arm's standardized mean differences against the top window, per
                    covariate (variant shares, the largest family share, token length, ...)
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


def stratified_rank_p(top: dict[int, float], null: np.ndarray, strata: np.ndarray) -> tuple[float, int]:
    """(p, count): the rank p of an arm trained with several seeds against draws each trained with
    one of them, compared within seed. count = sum over seeds s of #{draws of seed s >= top[s]};
    under the null (the top run exchangeable with its seed's draws) each seed's count is uniform on
    0..n_s and independent of the others, and p = P(a sum of such uniforms <= count). One seed gives
    (1 + count) / (1 + n), the unstratified rank p."""
    null, strata = np.asarray(null, dtype=float), np.asarray(strata)
    unknown = sorted(set(strata.tolist()) - set(top))
    if unknown:
        raise ValueError(f"draws trained with seeds {unknown} that the top arm has no run with")
    ways, count = np.array([1], dtype=np.int64), 0  # ways[c]: equally likely outcomes whose counts sum to c
    for seed, value in sorted(top.items()):
        mine = null[strata == seed]
        count += int((mine >= value).sum())
        ways = np.convolve(ways, np.ones(len(mine) + 1, dtype=np.int64))
    return float(ways[: count + 1].sum() / ways.sum()), count


def run_seeds(result: Any) -> list[int]:
    """The training seed of each row of an arm's success matrix (its runs, in order)."""
    runs = result.values["runs"]
    if [r["run"] for r in runs] != list(range(len(result.values["success_matrix"]))):
        raise ValueError("an arm's runs do not line up with its success matrix")
    return [int(r["train_seed"]) for r in runs]


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
        seeds = run_seeds(result)
        for run_index, success in enumerate(result.values["success_matrix"]):
            rows += [{"arm": name, "run": run_index, "seed": seeds[run_index], "item": j, "entity": e,
                      "success": int(s)} for j, (e, s) in enumerate(zip(entities, success, strict=True))]
    ctx.save_items("outcomes", rows)
    estimates = recompute(ctx.item_rows, config)
    top_m = np.array(results["top"].values["success_matrix"], dtype=float)
    rates = np.array(results["random"].values["success_matrix"], dtype=float).mean(axis=1)
    top_rate = float(top_m.mean())
    top_by_seed = dict(zip(run_seeds(results["top"]), top_m.mean(axis=1).tolist(), strict=True))
    if len(top_by_seed) != len(top_m):
        raise ValueError("the top arm has two runs with one training seed")
    subset_seeds = np.array(run_seeds(results["random"]))
    p, at_or_above = stratified_rank_p(top_by_seed, rates, subset_seeds)
    gain = estimates["gain"]
    rand = results["random"].values
    filters = {name: round(float(np.mean(results[name].values["success_matrix"])), 4) for name in cfg.filters}
    values = {"top_success": top_rate, "n_subsets": len(rates), "n_top_runs": len(top_m), "sided": "one",
              "subset_success": [round(float(x), 4) for x in rates],
              "subset_success_min": float(rates.min()), "subset_success_max": float(rates.max()),
              "n_subsets_at_or_above": int((rates >= top_rate).sum()), "rank_p": rank_p(top_rate, rates),
              "subset_seeds": subset_seeds.tolist(), "top_success_by_seed": {str(k): v for k, v in top_by_seed.items()},
              "n_subsets_at_or_above_by_seed": at_or_above, "rank_p_by_seed": p,
              "top_composition": results["top"].values["composition"], "random_composition": rand["composition"],
              "balance": rand.get("balance", {}), "overlap_with_top": rand.get("overlap_with_top"),
              "balance_max": max((abs(rand["balance"][c]) for c in MATCHED if c in rand.get("balance", {})),
                                 default=None),
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
