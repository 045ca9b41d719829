"""The control for the H-neuron sweep: random neuron sets matched to the H-neurons one for one on
layer and on activity (the same within-layer decile of mean CETT on the detection probe's training
questions), one per seed, swept over alpha on the same items. With `candidates` > 0 the sets are
also matched on how much they change the model: that many layer- and activity-matched candidate
sets are drawn, each set's KL divergence from the unsteered next-token distributions is measured
at both ends of the sweep (alpha 0 and the largest alpha) on selection-split compliance prompts,
and `seeds` of them are kept, the nearest the H-neurons in mean log KL on each side of it, as many
from above as makes the kept sets' mean log KL ratio nearest zero (`balanced_nearest`). The balance reached is
reported: layer and activity as standardized mean differences over the sets' neurons against the
H-neurons, KL as the mean log ratio of the kept sets' KL to the H-neurons'. The control statistic is the
H-neuron slope's rank among the seeds' slopes (one-sided, in the direction of the H-neuron effect):
p = (1 + #{seeds at least as far}) / (1 + seeds); a seed whose answers break (no slope) counts as
at least as far, never dropped. The seeds' mean slope and the H-neurons' paired gain over it carry
intervals over seeds and subject clusters."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.steering.committed import committed_sweep
from pipeline.steering.config import RandomSweepConfig as Config
from pipeline.steering.config import (
    SweepConfig,
    TasksConfig,
    detection,
    detection_activations,
    detection_split,
)
from pipeline.steering.neurons import arm_neurons, neuron_map, setup, sweep_sets
from pipeline.steering.summary import _slope, cut_off, item_rows, matrix, records_from_items


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


def smd(treated: np.ndarray, control: np.ndarray) -> float:
    """Standardized mean difference (control - treated) / pooled sd (0 when both are constant)."""
    sd = np.sqrt((treated.var() + control.var()) / 2)
    return 0.0 if sd == 0 else float((control.mean() - treated.mean()) / sd)


def set_kl(lm: Any, prompts: list[str], sets: list[dict[int, list[int]]], alphas: tuple[float, float]) -> np.ndarray:
    """Each set's mean next-token KL from the unsteered model at the two alphas: (sets, 2)."""
    from pipeline.interventions.sets import NeuronSets
    from pipeline.steering.direction_random import mean_kl

    family = NeuronSets([{}] + [s for s in sets for _ in alphas], [1.0] + [a for _ in sets for a in alphas])
    return mean_kl(lm, prompts, family).reshape(len(sets), len(alphas))


def balanced_nearest(log_ratio: np.ndarray, n: int) -> list[int]:
    """The n candidates kept for a KL match, in candidate order: the nearest k above the target
    (log ratio >= 0) and the nearest n - k below it, with k chosen so that the kept sets' mean log
    ratio is nearest zero (ties: the smaller largest distance, then the smaller k). The n nearest
    overall, the first rounds' rule, leave the mean on whichever side most candidates lie (the
    third round's H-neurons cause more KL than 86 of 96 matched sets: mean log ratio -0.22)."""
    if len(log_ratio) < n:
        raise ValueError(f"{len(log_ratio)} candidates cannot give {n} matched sets")
    order = np.argsort(np.abs(log_ratio), kind="stable")
    above = [int(i) for i in order if log_ratio[i] >= 0]
    below = [int(i) for i in order if log_ratio[i] < 0]
    options = []
    for k in range(max(0, n - len(below)), min(n, len(above)) + 1):
        kept = above[:k] + below[: n - k]
        options.append((abs(float(log_ratio[kept].mean())), float(np.abs(log_ratio[kept]).max()), k, kept))
    return sorted(min(options, key=lambda o: o[:3])[3])


def kl_matched(ctx: Any, cfg: Config, lm: Any, h_set: dict[int, list[int]], candidates: list[dict[int, list[int]]]
               ) -> tuple[list[int], dict[str, Any]]:
    """The `seeds` candidates kept as balanced nearest the H-neurons in mean log KL at the sweep's
    ends (their indices, in candidate order) and the KL measurements."""
    from pipeline.steering.evaluate import TaskSet

    ends = (float(min(cfg.alphas)), float(max(cfg.alphas)))
    prompts = TaskSet(ctx, "select", ("compliance",), cfg.n_shots, cfg.seed).prompts["compliance"][: cfg.n_calibration]
    h_kl = set_kl(lm, prompts, [h_set], ends)[0]
    ckpt = ctx.checkpoint("kl")
    chunk = 8
    todo = [i for i in range(0, len(candidates), chunk) if i not in ckpt]
    for i in ctx.progress(todo, total=len(todo), desc="KL of candidate neuron sets"):
        ckpt[i] = set_kl(lm, prompts, candidates[i: i + chunk], ends).tolist()
    kl = np.concatenate([np.asarray(ckpt[i]) for i in range(0, len(candidates), chunk)])  # (candidates, 2)
    kept = balanced_nearest(np.log(np.maximum(kl, 1e-12)).mean(axis=1) - np.log(np.maximum(h_kl, 1e-12)).mean(),
                            cfg.seeds)
    return kept, {"alphas": list(ends), "h_neurons": h_kl.tolist(), "candidates": kl.tolist(), "kept": kept,
                  "n_prompts": len(prompts)}


def matched_sets(ctx: Any, cfg: Config, neurons: list[dict[str, Any]], d_ffn: int,
                 lm: Any = None) -> tuple[list[dict[int, list[int]]], dict[str, Any]]:
    """One set per seed: for each H-neuron a random other neuron of its layer and activity decile
    (with cfg.candidates, the seeds nearest the H-neurons in KL among that many such sets), and the
    balance reached on layer, activity and (when matched) KL."""
    from pipeline.hneurons.probing import activity_bins, matched_random_set

    up = ctx.upstream("activations")
    ids = up.result.values["ids"]
    row = {q: i for i, q in enumerate(ids)}
    train = np.array([row[q] for q in ctx.upstream("split").result.values["splits"][0]["train"]])
    X = up.arrays("cett_answer")["x"]
    activity = X[train].reshape(len(train), -1).mean(axis=0)
    bins = activity_bins(activity, d_ffn, cfg.activity_bins)
    chosen = np.array([n["layer"] * d_ffn + n["neuron"] for n in neurons])
    flat = [matched_random_set(chosen, bins, d_ffn, np.random.default_rng([cfg.seed, 1000 + s]))
            for s in range(max(cfg.seeds, cfg.candidates))]
    info: dict[str, Any] = {}
    if cfg.candidates:
        kept, info = kl_matched(ctx, cfg, lm, neuron_map(neurons), [neuron_map(
            [{"layer": i // d_ffn, "neuron": i % d_ffn} for i in idx.tolist()]) for idx in flat])
        flat = [flat[k] for k in kept]
    random_idx = np.concatenate(flat)
    balance = {"layer": smd(chosen // d_ffn, random_idx // d_ffn), "activity": smd(activity[chosen], activity[random_idx])}
    if info:
        h = np.log(np.maximum(info["h_neurons"], 1e-12)).mean()
        kept_kl = np.log(np.maximum(np.asarray(info["candidates"])[info["kept"]], 1e-12)).mean(axis=1)
        balance["kl"] = float(kept_kl.mean() - h)
    ctx.record(activity={"h_neurons": float(activity[chosen].mean()), "bins": cfg.activity_bins})
    sets = [neuron_map([{"layer": i // d_ffn, "neuron": i % d_ffn} for i in idx.tolist()]) for idx in flat]
    return sets, {"balance": balance, "kl": info, "activity_h_neurons": float(activity[chosen].mean()),
                  "activity_random": float(activity[random_idx].mean())}


def seed_matrices(cfg: Config, records: list[dict[str, Any]], neutral: dict[str, Any], grid: list[float], task: str
                  ) -> np.ndarray:
    """(seeds, items, alphas) of one task: each seed's own alphas, alpha 1 from the H-neuron sweep."""
    out = []
    for s in range(cfg.seeds):
        mine = records[s * len(cfg.alphas): (s + 1) * len(cfg.alphas)]
        by_alpha = {float(x): r for x, r in zip(cfg.alphas, mine, strict=True)} | {1.0: neutral}
        out.append(matrix([by_alpha[x] for x in grid], task))
    return np.stack(out)


def rank_against(cfg: Config, a: np.ndarray, H: np.ndarray, stacked: np.ndarray, clusters: list[np.ndarray],
                 prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The H-neurons' slope ranked among the seeds' (one-sided, in its own direction; a broken seed
    counts as at least as far), and the seeds' mean slope and the paired gain with intervals."""
    h_slope = _slope(a, H)
    seed_slopes = [_slope(a, stacked[k]) for k in range(cfg.seeds)]
    direction = 1.0 if h_slope >= 0 else -1.0
    as_far = [np.isnan(x) or direction * x >= direction * h_slope for x in seed_slopes]

    def mean_slope(seeds: np.ndarray, items: np.ndarray) -> float:
        slopes = [_slope(a, stacked[k][items]) for k in seeds]
        return float(np.nanmean(slopes)) if not all(np.isnan(slopes)) else float("nan")

    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "items", "n_resamples": 400}
    estimates = {f"{prefix}slope_pp": stats.seed_cluster_bootstrap(mean_slope, cfg.seeds, clusters, **kw),
                 f"{prefix}slope_gain_pp": stats.seed_cluster_bootstrap(
                     lambda seeds, items: _slope(a, H[items]) - mean_slope(seeds, items), cfg.seeds, clusters, **kw)}
    valid = [x for x in seed_slopes if not np.isnan(x)]
    values = {f"{prefix}h_slope_same_alphas": h_slope,
              f"{prefix}seed_slopes_pp": [None if np.isnan(x) else float(x) for x in seed_slopes],
              f"{prefix}seed_slope_min": min(valid, default=None), f"{prefix}seed_slope_max": max(valid, default=None),
              f"{prefix}seeds_broken": int(sum(np.isnan(x) for x in seed_slopes)),
              f"{prefix}seeds_as_far": int(sum(as_far)),
              f"{prefix}rank_p": float((1 + sum(as_far)) / (1 + cfg.seeds))}
    return {k: v for k, v in estimates.items() if v is not None}, values


def estimates_of(cfg: Config, records: list[dict[str, Any]], neutral: dict[str, Any], h_records: list[dict[str, Any]],
                 h_alphas: list[float], clusters: dict[str, list[np.ndarray]]) -> tuple[dict[str, Any], dict[str, Any]]:
    grid = sorted({*map(float, cfg.alphas), 1.0})
    a = np.asarray(grid, dtype=float)
    estimates: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for task in cfg.tasks:
        prefix = "" if task == "compliance" else f"{task}_"
        stacked = seed_matrices(cfg, records, neutral, grid, task)
        H = matrix([h_records[h_alphas.index(x)] for x in grid], task)  # the H-neuron sweep on the same alphas
        found, vals = rank_against(cfg, a, H, stacked, clusters[task], prefix)
        estimates.update({("compliance_" if not prefix else prefix) + k.removeprefix(prefix): v
                          for k, v in found.items()})
        values.update(vals)
        if task == "compliance":
            values["n_items"] = int(stacked.shape[1])
            values["sweeps"] = {f"seed {k}": [{"alpha": float(x), "value": float(v)} for x, v in
                                              zip(grid, np.nanmean(stacked[k], axis=0), strict=True) if not np.isnan(v)]
                                for k in range(cfg.seeds)}
    values["alphas"] = grid
    return estimates, values


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The control's estimates from its committed per-item outcomes (the seeds' and, at alpha 1 and
    on the same alphas, the H-neurons')."""
    cfg = Config(**config)
    settings, records, clusters = records_from_items(items["outcomes"], ("set", "alpha"))
    by = dict(zip(settings, records, strict=True))
    h_alphas = sorted({a for name, a in settings if name == "h-neurons"})
    h_records = [by[("h-neurons", a)] for a in h_alphas]
    seeds = [by[(f"seed {s}", float(a))] for s in range(cfg.seeds) for a in cfg.alphas]
    return estimates_of(cfg, seeds, by[("h-neurons", 1.0)], h_records, h_alphas, clusters)[0]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions.sets import NeuronSets

    cfg = Config(**config)
    lm, taskset = setup(cfg, ctx, tuple(cfg.tasks))
    neurons = arm_neurons(ctx.upstream("probe").result.values, cfg.arm)
    # alpha 1 leaves the model unchanged (exactly: the hook multiplies by 1.0), so every seed's
    # unsteered column is the H-neuron sweep's: it is read from the sweep's committed per-item rows
    # (what a reader has), not generated again
    h_all = committed_sweep(ctx.upstream("neurons"), "alpha")
    for task in cfg.tasks:
        if [r["item"]["id"] for r in h_all["rows"][task]] != [r["item"]["id"] for r in taskset.rows[task]]:
            raise RuntimeError(f"the H-neuron sweep was scored on other {task} items")
    h_alphas = [float(x) for x in h_all["settings"]]
    h_records = [{t: r[t] for t in cfg.tasks} for r in h_all["records"]]
    neutral = h_records[h_alphas.index(1.0)]
    sets, matching = matched_sets(ctx, cfg, neurons, lm.d_ffn, lm)
    # every seed at every alpha is one set; they share generation passes (rows = set x item)
    pairs = [(s, k) for s in range(cfg.seeds) for k in range(len(cfg.alphas))]
    family = NeuronSets([sets[s] for s, _ in pairs], [cfg.alphas[k] for _, k in pairs])
    records = sweep_sets(ctx, cfg, lm, taskset, family, [(f"seed{s}", k) for s, k in pairs], "random neuron sets")
    grid = sorted({*map(float, cfg.alphas), 1.0})
    estimates, values = estimates_of(cfg, records, neutral, h_records, h_alphas, taskset.clusters())
    shown = [("h-neurons", x) for x in grid]
    ctx.save_items("outcomes", item_rows(
        [{"set": name, "alpha": x} for name, x in shown] + [{"set": f"seed {s}", "alpha": float(cfg.alphas[k])}
                                                              for s, k in pairs],
        [h_records[h_alphas.index(x)] for _, x in shown] + records, taskset.rows))
    estimates = recompute(ctx.item_rows, config)  # what a reader rebuilds from the committed rows
    values.update({"method": "random neurons matched on layer, activity" + (" and KL" if cfg.candidates else ""),
                   "seeds": cfg.seeds, "sided": "one", "n_neurons": len(neurons), "candidates": cfg.candidates,
                   "tasks": list(cfg.tasks), "cut_off": cut_off(records), **matching})
    return Result(estimates=estimates, values=values)
