"""The control for the H-neuron sweep: random neuron sets matched in count and layer distribution,
one per seed, swept over alpha on the same items. Their slopes form the distribution the H-neuron
slope is read against; their mean slope carries an item-bootstrap interval (paired across seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.probing import random_neurons
from pipeline.steering.config import RandomSweepConfig as Config
from pipeline.steering.config import TasksConfig, detection
from pipeline.steering.neurons import eval_setup, sweep
from pipeline.steering.summary import COMPLETE, matrix, series


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"tasks": ("pipeline.steering.tasks", cfg.upstream(TasksConfig)),
            "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions import scale_neurons

    cfg = Config(**config)
    lm, items, prompts = eval_setup(cfg, ctx, ("compliance",))
    probe = ctx.upstream("probe").result.values
    a = np.asarray(cfg.alphas, dtype=float)
    matrices, per_seed, all_series = [], [], []
    for s in range(cfg.seeds):
        idx = random_neurons(probe["layer_counts"], lm.d_ffn, np.random.default_rng([cfg.seed, 1000 + s]))
        neurons: dict[int, list[int]] = {}
        for flat in idx.tolist():
            neurons.setdefault(flat // lm.d_ffn, []).append(flat % lm.d_ffn)
        records = sweep(ctx, cfg, lm, items, prompts, lambda al, n=neurons: scale_neurons(lm, n, al), f"seed{s}")
        M = matrix(records, "compliance", "strict")
        matrices.append(M)
        per_seed.append(100 * stats.slope(a, M))
        all_series.append(series(cfg.alphas, M, records, "compliance", "strict", cfg.level))
    stacked = np.stack(matrices)  # (seeds, items, alphas)
    keep = ~np.isnan(stacked).any(axis=(0, 2))  # items parsed at every alpha for every seed (paired)
    S = stacked[:, keep]
    mean_slope = stats.bootstrap_items(
        lambda idx: float(np.mean([100 * stats.slope(a, S[k, idx]) for k in range(len(S))])),
        S.shape[1], level=cfg.level, seed=cfg.seed, unit=COMPLETE)
    i, j = list(cfg.alphas).index(1.0), int(np.argmax(cfg.alphas))
    mean_effect = stats.bootstrap_items(
        lambda idx: float(np.mean([100 * (S[k, idx, j].mean() - S[k, idx, i].mean()) for k in range(len(S))])),
        S.shape[1], level=cfg.level, seed=cfg.seed, unit=COMPLETE)
    return Result(
        estimates={"compliance_slope_pp": mean_slope, "compliance_effect_pp": mean_effect},
        values={"method": "random neurons", "seeds": cfg.seeds, "alphas": list(map(float, cfg.alphas)),
                "seed_slopes_pp": per_seed, "seed_slope_min": min(per_seed), "seed_slope_max": max(per_seed),
                "seed_slope_max_abs": max(abs(x) for x in per_seed), "n_neurons": int(sum(probe["layer_counts"])),
                "sweeps": all_series, "n_items": len(items),
                "n_items_parsed_everywhere": int(keep.sum())},
    )
