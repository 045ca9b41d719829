"""The control for the H-neuron sweep: random neuron sets matched to the H-neurons one for one on
layer and on activity (the same within-layer decile of mean CETT on the detection probe's training
questions), one per seed, swept over alpha on the same items. The control statistic is the
H-neuron slope's rank among the seeds' slopes (one-sided, in the direction of the H-neuron effect):
p = (1 + #{seeds at least as far}) / (1 + seeds); a seed whose answers break (no slope) counts as
at least as far, never dropped. The seeds' mean slope and the H-neurons' paired gain over it carry
intervals over seeds and subject clusters."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.steering.config import RandomSweepConfig as Config
from pipeline.steering.config import (
    SweepConfig,
    TasksConfig,
    detection,
    detection_activations,
    detection_split,
)
from pipeline.steering.neurons import arm_neurons, neuron_map, setup, sweep_sets
from pipeline.steering.summary import _slope, matrix


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    tasks = cfg.upstream(TasksConfig)
    return {"tasks": ("pipeline.steering.tasks", tasks), "known": ("pipeline.steering.known", tasks),
            "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json")),
            "neurons": ("pipeline.steering.neurons", SweepConfig(**cfg.upstream(TasksConfig), arm=cfg.arm,
                                                                 level=cfg.level).model_dump(mode="json")),
            "activations": ("pipeline.hneurons.activations",
                            detection_activations(cfg.profile, cfg.seed).model_dump(mode="json")),
            "split": ("pipeline.hneurons.split", detection_split(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.steering.judges import judges_in_use

    return {"model": fingerprint(config["profile"]), "judges": judges_in_use()}


def matched_sets(ctx: Any, cfg: Config, neurons: list[dict[str, Any]], d_ffn: int) -> list[dict[int, list[int]]]:
    """One set per seed: for each H-neuron a random other neuron of its layer and activity decile."""
    from pipeline.hneurons.probing import activity_bins, matched_random_set

    up = ctx.upstream("activations")
    ids = up.result.values["ids"]
    row = {q: i for i, q in enumerate(ids)}
    train = np.array([row[q] for q in ctx.upstream("split").result.values["splits"][0]["train"]])
    X = up.arrays("cett_answer")["x"]
    activity = X[train].reshape(len(train), -1).mean(axis=0)
    bins = activity_bins(activity, d_ffn, cfg.activity_bins)
    chosen = np.array([n["layer"] * d_ffn + n["neuron"] for n in neurons])
    out = []
    for s in range(cfg.seeds):
        idx = matched_random_set(chosen, bins, d_ffn, np.random.default_rng([cfg.seed, 1000 + s]))
        out.append(neuron_map([{"layer": i // d_ffn, "neuron": i % d_ffn} for i in idx.tolist()]))
    ctx.record(activity={"h_neurons": float(activity[chosen].mean()), "bins": cfg.activity_bins})
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions.sets import NeuronSets

    cfg = Config(**config)
    lm, taskset = setup(cfg, ctx, ("compliance",))
    neurons = arm_neurons(ctx.upstream("probe").result.values, cfg.arm)
    # alpha 1 leaves the model unchanged (exactly: the hook multiplies by 1.0), so every seed's
    # unsteered column is the H-neuron sweep's: it is read from there, not generated again
    h_records = ctx.upstream("neurons").json("generations")["records"]
    h_alphas = ctx.upstream("neurons").result.values["alphas"]
    grid = sorted({*map(float, cfg.alphas), 1.0})
    a = np.asarray(grid, dtype=float)
    neutral = h_records[h_alphas.index(1.0)]
    sets = matched_sets(ctx, cfg, neurons, lm.d_ffn)
    # every seed at every alpha is one set; they share generation passes (rows = set x item)
    pairs = [(s, k) for s in range(cfg.seeds) for k in range(len(cfg.alphas))]
    family = NeuronSets([sets[s] for s, _ in pairs], [cfg.alphas[k] for _, k in pairs])
    records = sweep_sets(ctx, cfg, lm, taskset, family, [(f"seed{s}", k) for s, k in pairs], "random neuron sets")
    matrices = []
    for s in range(cfg.seeds):
        mine = records[s * len(cfg.alphas): (s + 1) * len(cfg.alphas)]
        by_alpha = {float(x): r for x, r in zip(cfg.alphas, mine, strict=True)} | {1.0: neutral}
        matrices.append(matrix([by_alpha[x] for x in grid], "compliance"))
    stacked = np.stack(matrices)  # (seeds, items, alphas)
    # the H-neuron sweep on the same alphas (its own records), for a like-for-like slope
    H = matrix([h_records[h_alphas.index(x)] for x in grid], "compliance")
    h_slope = _slope(a, H)
    seed_slopes = [_slope(a, stacked[k]) for k in range(cfg.seeds)]
    direction = 1.0 if h_slope >= 0 else -1.0
    as_far = [np.isnan(x) or direction * x >= direction * h_slope for x in seed_slopes]
    clusters = taskset.clusters()["compliance"]

    def mean_slope(seeds: np.ndarray, items: np.ndarray) -> float:
        slopes = [_slope(a, stacked[k][items]) for k in seeds]
        return float(np.nanmean(slopes)) if not all(np.isnan(slopes)) else float("nan")

    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "items", "n_resamples": 400}
    estimates = {"compliance_slope_pp": stats.seed_cluster_bootstrap(mean_slope, cfg.seeds, clusters, **kw),
                 "slope_gain_pp": stats.seed_cluster_bootstrap(
                     lambda seeds, items: _slope(a, H[items]) - mean_slope(seeds, items), cfg.seeds, clusters, **kw)}
    broken = int(sum(np.isnan(x) for x in seed_slopes))
    valid = [x for x in seed_slopes if not np.isnan(x)]
    return Result(
        estimates={k: v for k, v in estimates.items() if v is not None},
        values={"method": "random neurons matched on layer and activity", "seeds": cfg.seeds,
                "alphas": grid, "h_slope_same_alphas": h_slope,
                "seed_slopes_pp": [None if np.isnan(x) else float(x) for x in seed_slopes],
                "seed_slope_min": min(valid, default=None), "seed_slope_max": max(valid, default=None),
                "seeds_broken": broken, "seeds_as_far": int(sum(as_far)),
                "rank_p": float((1 + sum(as_far)) / (1 + cfg.seeds)),
                "n_neurons": len(neurons), "n_items": int(stacked.shape[1]),
                "sweeps": {f"seed {k}": [{"alpha": float(x), "value": float(v)} for x, v in
                                         zip(grid, np.nanmean(stacked[k], axis=0), strict=True)
                                         if not np.isnan(v)] for k in range(cfg.seeds)}},
    )
