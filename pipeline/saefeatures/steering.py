"""The thesis test, steering side: scaling the SAE detector's positive-weight latents (the
"H-features") by alpha, on the steering study's compliance task, beside H-neuron scaling.

Only the decoded delta is added: at each H-feature's layer the residual stream h becomes
h + (alpha - 1) * sum_j f_j(h) * W_dec[j], with f = the SAE's encoding of h. The SAE's
reconstruction error never enters the model (h itself is kept), so alpha = 1 adds exact zeros and
any effect comes from the chosen latents alone.

features sae     the alpha sweep on the items the model knows (pipeline.steering.evaluate: greedy
                 generations, the strict judge, compliance = context / (context + memory)), its slope
                 in points per unit of alpha with a subject-cluster interval, and its paired
                 difference with the H-neuron sweep on the same items and alphas
features random  the control: random latents matched to the H-features one for one on SAE and on
                 mean activation over the detector's training questions, one set per seed, swept
                 over fewer alphas; the SAE slope's rank among the seeds' slopes is a p-value (a seed
                 that breaks the answers counts as reaching it)

The control's latents are drawn as the detector's control draws them (detector_random.
matched_latent_set: within the SAE, among the `match_pool` nearest in mean activation to the
H-feature's own plus the set's running shortfall), not from the same activity decile: SAE
activations are heavy-tailed and the detector keeps the top of the tail, so decile draws left the
random latents markedly less active (0bfb447). With `candidates`, the `seeds` sets kept are those
balanced nearest the H-features in KL at each end of the sweep (balanced_each_end; the neuron
control's rule balances only the mean over the ends, which let its sets cause less KL at alpha 0
and more at alpha 3). Balance is reported as the detector's control reports it: standardized mean
differences (drawn minus H-features, over the kept sets' latents) in layer and mean activation,
beside the kept sets' mean log KL ratio, over both ends and at each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.steering.config import SweepConfig, TasksConfig
from pipeline.steering.neurons_random import balanced_nearest

PACKAGES = ("sae-lens",)


class Config(SweepConfig):
    detector: dict[str, Any] = Field(default_factory=dict, description="Settings of the SAE detector node "
                                     "beyond profile and seed (pipeline.saefeatures.detector.Config).")
    features: Literal["sae", "random"] = Field("sae", description="sae: the H-features; random: matched "
                                               "random latents (the control).")
    externality: bool = False
    seeds: int = Field(32, ge=1, description="Random latent sets (features: random).")
    random_alphas: tuple[float, ...] = Field((0.0, 1.0, 2.0, 3.0), description="Alphas of each random set (alpha "
                                             "1 adds exact zeros: its column is the H-feature sweep's).")
    match_pool: int = Field(5, ge=1, description="A random latent is drawn among this many latents of its SAE "
                            "nearest the activation it must match (features: random; detector_random."
                            "matched_latent_set).")
    candidates: int = Field(0, ge=0, description="SAE- and activation-matched candidate sets drawn to match on KL: "
                            "the `seeds` nearest the H-features in the KL divergence they cause at the random "
                            "alphas' ends are kept, balanced above and below it (neurons_random."
                            "balanced_nearest; 0: the first `seeds` draws).")
    n_calibration: int = Field(8, ge=2, description="Selection-split compliance prompts the KL is measured on.")
    kl_balance: Literal["mean", "each_end"] = Field("each_end", description="mean: keep the sets balanced on the "
                                                    "mean of the two ends' log KL ratios (neurons_random."
                                                    "balanced_nearest), which can offset a deficit at one end by "
                                                    "an excess at the other; each_end: balanced at each end "
                                                    "(balanced_each_end).")


def balanced_each_end(log_ratio: np.ndarray, n: int, target: float = 0.05) -> list[int]:
    """The n candidates kept for a KL match at every end of a sweep at once, in candidate order: start
    from the n nearest the target (Euclidean over the ends' log KL ratios), then swap one kept
    candidate for one left out, each time the swap that most lowers the largest |mean log ratio|
    over the ends (ties: the nearer newcomer), until that is at most `target` or no swap lowers it."""
    log_ratio = np.asarray(log_ratio, dtype=float)
    if log_ratio.ndim != 2 or len(log_ratio) < n:
        raise ValueError(f"{len(log_ratio)} candidates cannot give {n} matched sets")
    dist = np.linalg.norm(log_ratio, axis=1)
    kept = [int(i) for i in np.argsort(dist, kind="stable")[:n]]
    while True:
        mean = log_ratio[kept].mean(axis=0)
        worst = float(np.abs(mean).max())
        if worst <= target:
            break
        out = np.array([i for i in range(len(log_ratio)) if i not in set(kept)])
        if not len(out):
            break
        # every swap (kept a -> candidate b): the new means, (kept, out, ends)
        new = mean[None, None, :] + (log_ratio[out][None, :, :] - log_ratio[kept][:, None, :]) / n
        score = np.abs(new).max(axis=2)
        best = float(score.min())
        if best >= worst - 1e-12:
            break
        a, b = min(zip(*np.nonzero(score <= best + 1e-12), strict=True), key=lambda ab: (dist[out[ab[1]]], ab))
        kept[a] = int(out[b])
    return sorted(kept)


def detector_config(cfg: Config) -> dict[str, Any]:
    from pipeline.saefeatures.detector import Config as DetectorConfig

    return DetectorConfig(**{"profile": cfg.profile, "seed": cfg.seed, **cfg.detector}).model_dump(mode="json")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.saefeatures.detector import Config as DetectorConfig
    from pipeline.saefeatures.detector import sae_node

    cfg = Config(**config)
    tasks = cfg.upstream(TasksConfig)
    detector = detector_config(cfg)
    out = {"tasks": ("pipeline.steering.tasks", tasks), "known": ("pipeline.steering.known", tasks),
           "detector": ("pipeline.saefeatures.detector", detector),
           "saes": ("pipeline.saefeatures.saes", sae_node(DetectorConfig(**detector))),
           "neurons": ("pipeline.steering.neurons", SweepConfig(**tasks, alphas=cfg.alphas, level=cfg.level)
                       .model_dump(mode="json"))}
    if cfg.features == "random":
        random_only = ("features", "seeds", "random_alphas", "candidates", "n_calibration", "match_pool")
        out["sae_steering"] = ("pipeline.saefeatures.steering",
                               {**{k: v for k, v in config.items() if k not in random_only}, "features": "sae"})
    return out


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.steering.judges import judges_in_use

    return {"model": fingerprint(config["profile"]), "judges": judges_in_use()}


@contextlib.contextmanager
def scale_features(lm: Any, saes: Mapping[int, Any], latents: Mapping[int, Sequence[int]], alpha: float
                   ) -> Iterator[None]:
    """Add (alpha - 1) x the decoded contribution of the chosen latents to each layer's output."""
    import torch

    handles = []

    def hook_for(d: Any, idx: Any) -> Any:
        W = d.decoder_rows(idx)  # (k, D)

        def hook(module: Any, args: Any, output: Any) -> Any:
            h = output[0] if isinstance(output, tuple) else output
            with torch.no_grad():
                f = d.encode(h.float())[..., idx]  # (B, T, k)
                h = h + ((alpha - 1.0) * f @ W).to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    try:
        for layer, idx in latents.items():
            index = torch.as_tensor(list(idx), dtype=torch.long)
            handles.append(lm.layers[layer].register_forward_hook(hook_for(saes[layer], index)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class LatentSets:
    """A family of decoded-delta settings for pipeline.interventions.sets: set k adds
    (alphas[k] - 1) x the decoded contribution of its latents latents[k] ({layer: [index, ...]}) to
    each of those layers' outputs, exactly as scale_features does for that set alone (each set's
    rows are encoded and decoded on their own, with that set's latents)."""

    saes: Mapping[int, Any]
    latents: Sequence[Mapping[int, Sequence[int]]]
    alphas: Sequence[float]

    def __len__(self) -> int:
        return len(self.alphas)

    def subset(self, ks: Sequence[int]) -> LatentSets:
        return LatentSets(self.saes, [self.latents[k] for k in ks], [self.alphas[k] for k in ks])

    def context(self, lm: Any, k: int) -> contextlib.AbstractContextManager:
        return scale_features(lm, self.saes, self.latents[k], self.alphas[k])

    def install(self, lm: Any) -> contextlib.AbstractContextManager:
        import torch

        from pipeline.interventions.sets import _installed

        layers = sorted({int(layer) for m in self.latents for layer, idx in m.items() if len(idx)})

        def build(rows: Any) -> None:
            for layer in layers:
                d = self.saes[layer]
                per_set = [(torch.as_tensor(list(m.get(layer, ())), dtype=torch.long), float(a))
                           for m, a in zip(self.latents, self.alphas, strict=True)]
                weights = [d.decoder_rows(idx) if len(idx) else None for idx, _ in per_set]
                state: dict[str, Any] = {}

                def update(set_of_row: Any, state: dict[str, Any] = state) -> None:
                    state["groups"] = [(k, torch.nonzero(set_of_row == k).flatten())
                                       for k in torch.unique(set_of_row).tolist()]

                def hook(module: Any, args: Any, output: Any, state: dict[str, Any] = state, d: Any = d,
                         per_set: Any = per_set, weights: Any = weights) -> Any:
                    h = output[0] if isinstance(output, tuple) else output
                    with torch.no_grad():
                        for k, sel in state["groups"]:
                            idx, alpha = per_set[k]
                            if not len(idx) or alpha == 1.0:
                                continue  # adds exact zeros, as scale_features does
                            f = d.encode(h[sel].float())[..., idx]  # (r, T, k)
                            h = h.index_add(0, sel, ((alpha - 1.0) * f @ weights[k]).to(h.dtype))
                    return (h, *output[1:]) if isinstance(output, tuple) else h

                rows.updates.append(update)
                rows.handles.append(lm.layers[layer].register_forward_hook(hook))

        return _installed(lm, layers[0] if layers else None, build)


def by_layer(latents: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for f in latents:
        out.setdefault(int(f["layer"]), []).append(int(f["index"]))
    return out


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed per-item outcomes: the H-feature sweep (features: sae) with
    its paired difference from the H-neurons, or the random latent sets' mean slope (random)."""
    from pipeline.steering.summary import _slope, matrix, records_from_items, summarize

    cfg = Config(**config)
    settings, records, clusters = records_from_items(items["outcomes"], ("set", "alpha"))
    by = dict(zip(settings, records, strict=True))
    c = clusters["compliance"]
    if cfg.features == "sae":
        mine = [by[("h-features", float(x))] for x in cfg.alphas]
        estimates, _ = summarize(cfg.alphas, mine, ("compliance",), {"compliance": c}, level=cfg.level, seed=cfg.seed,
                                 neutral=list(cfg.alphas).index(1.0), target=int(np.argmax(cfg.alphas)))
        a = np.asarray(cfg.alphas, dtype=float)
        M, H = matrix(mine, "compliance"), matrix([by[("h-neurons", float(x))] for x in cfg.alphas], "compliance")
        gap = stats.cluster_bootstrap(lambda idx: _slope(a, M[idx]) - _slope(a, H[idx]), c, level=cfg.level,
                                      seed=cfg.seed, unit="items")
        return {**estimates, **({"slope_minus_hneuron_pp": gap} if gap is not None else {})}
    grid = sorted({*map(float, cfg.random_alphas), 1.0})
    a = np.asarray(grid, dtype=float)
    neutral = by[("h-features", 1.0)]
    stacked = np.stack([matrix([by.get((f"seed {s}", x), neutral) if x != 1.0 else neutral for x in grid],
                               "compliance") for s in range(cfg.seeds)])

    def mean_slope(seeds: np.ndarray, items: np.ndarray) -> float:
        slopes = [_slope(a, stacked[k][items]) for k in seeds]
        return float(np.nanmean(slopes)) if not all(np.isnan(slopes)) else float("nan")

    est = stats.seed_cluster_bootstrap(mean_slope, cfg.seeds, c, level=cfg.level, seed=cfg.seed, unit="items",
                                       n_resamples=400)
    return {"compliance_slope_pp": est} if est is not None else {}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.dictionary import load_saes
    from pipeline.steering.committed import committed_sweep
    from pipeline.steering.neurons import setup, sweep_sets
    from pipeline.steering.summary import (
        _slope,
        cut_off,
        item_rows,
        matrix,
        minimum_detectable,
        summarize,
    )

    cfg = Config(**config)
    lm, taskset = setup(cfg, ctx, ("compliance",))
    saes = {d.layer: d for d in load_saes(ctx.upstream("saes"))}
    h_features = ctx.upstream("detector").result.values["h_features"]
    if not h_features:
        raise ValueError("the SAE detector kept no positive-weight latent: nothing to scale")
    clusters = taskset.clusters()["compliance"]
    if cfg.features == "random":
        return run_random(cfg, ctx, lm, taskset, saes, h_features, clusters)
    # every alpha is one set; they share generation passes (rows = alpha x item)
    records = sweep_sets(ctx, cfg, lm, taskset, LatentSets(saes, [by_layer(h_features)] * len(cfg.alphas), cfg.alphas),
                         [("h-features", k) for k in range(len(cfg.alphas))], "h-features")
    _, values = summarize(cfg.alphas, records, ("compliance",), {"compliance": clusters}, level=cfg.level,
                          seed=cfg.seed, neutral=list(cfg.alphas).index(1.0), target=int(np.argmax(cfg.alphas)))
    neurons = committed_sweep(ctx.upstream("neurons"), "alpha")
    if [r["item"]["id"] for r in neurons["rows"]["compliance"]] != [r["item"]["id"] for r in taskset.rows["compliance"]]:
        raise RuntimeError("the H-neuron sweep was scored on other compliance items")
    n_alphas = [float(x) for x in neurons["settings"]]
    h_records = [{"compliance": neurons["records"][n_alphas.index(float(x))]["compliance"]} for x in cfg.alphas]
    ctx.save_json("generations", {"rows": taskset.rows, "records": records})
    ctx.save_items("outcomes", item_rows(
        [{"set": "h-features", "alpha": float(x)} for x in cfg.alphas] +
        [{"set": "h-neurons", "alpha": float(x)} for x in cfg.alphas], records + h_records, taskset.rows))
    estimates = recompute(ctx.item_rows, config)  # what a reader rebuilds from the committed rows
    a = np.asarray(cfg.alphas, dtype=float)
    values.update({"method": "SAE H-features (decoded delta)", "n_features": len(h_features),
                   "layers": sorted({f["layer"] for f in h_features}),
                   "hneuron_slope_pp": _slope(a, matrix(h_records, "compliance")), "cut_off": cut_off(records),
                   "minimum_detectable": {"compliance_slope_pp": minimum_detectable(
                       estimates.get("compliance_slope_pp"), cfg.power, cfg.test_alpha)}})
    return Result(estimates=estimates, values=values)


def latent_kl(lm: Any, prompts: list[str], saes: Mapping[int, Any], sets: list[dict[int, list[int]]],
              alphas: tuple[float, float]) -> np.ndarray:
    """Each latent set's mean next-token KL from the unsteered model at the two alphas: (sets, 2)."""
    from pipeline.steering.direction_random import mean_kl

    family = LatentSets(saes, [{}] + [m for m in sets for _ in alphas], [1.0] + [x for _ in sets for x in alphas])
    return mean_kl(lm, prompts, family).reshape(len(sets), len(alphas))


def candidate_sets(cfg: Config, chosen: np.ndarray, activation: np.ndarray, width: int) -> list[np.ndarray]:
    """The control's candidate latent sets (flat indices, SAE = index // width), max(seeds, candidates)
    of them, each matched to the H-features `chosen` one for one on SAE and mean activation."""
    from pipeline.saefeatures.detector_random import matched_latent_set

    return [matched_latent_set(chosen, activation, width, np.random.default_rng([cfg.seed, 3000 + s]), cfg.match_pool)
            for s in range(max(cfg.seeds, cfg.candidates))]


def run_random(cfg: Config, ctx: Any, lm: Any, taskset: Any, saes: dict[int, Any], h_features: list[dict[str, Any]],
               clusters: list[np.ndarray]) -> Result:
    from pipeline.saefeatures.detector_random import latent_balance
    from pipeline.steering.committed import committed_sweep
    from pipeline.steering.evaluate import TaskSet
    from pipeline.steering.neurons import sweep_sets
    from pipeline.steering.summary import _slope, cut_off, item_rows, matrix

    det = ctx.upstream("detector")
    X, widths, layers = det.arrays("features")["x"], det.result.values["widths"], det.result.values["layers"]
    row = {q: i for i, q in enumerate(det.result.values["ids"])}
    train = np.array([row[q] for q in det.result.values["first_train_ids"]])  # as for the H-neurons
    width = widths[0]
    activation = X[train].mean(axis=0)
    chosen = np.array([f["flat"] for f in h_features])
    flat = candidate_sets(cfg, chosen, activation, width)
    as_sets = [by_layer([{"layer": layers[i // width], "index": i % width} for i in idx.tolist()]) for idx in flat]
    balance: dict[str, float] = {}
    kl_info: dict[str, Any] = {}
    if cfg.candidates:
        ends = (float(min(cfg.random_alphas)), float(max(cfg.random_alphas)))
        prompts = TaskSet(ctx, "select", ("compliance",), cfg.n_shots, cfg.seed).prompts["compliance"][: cfg.n_calibration]
        h_kl = latent_kl(lm, prompts, saes, [by_layer(h_features)], ends)[0]
        ckpt = ctx.checkpoint("kl")
        todo = [i for i in range(0, len(as_sets), 8) if i not in ckpt]
        for i in ctx.progress(todo, total=len(todo), desc="KL of candidate latent sets"):
            ckpt[i] = latent_kl(lm, prompts, saes, as_sets[i: i + 8], ends).tolist()
        kl = np.concatenate([np.asarray(ckpt[i]) for i in range(0, len(as_sets), 8)])
        ratio = np.log(np.maximum(kl, 1e-12)) - np.log(np.maximum(np.asarray(h_kl), 1e-12))[None, :]  # (sets, ends)
        kept = (balanced_each_end(ratio, cfg.seeds) if cfg.kl_balance == "each_end"
                else balanced_nearest(ratio.mean(axis=1), cfg.seeds))
        flat, as_sets = [flat[k] for k in kept], [as_sets[k] for k in kept]
        balance["kl"] = float(ratio[kept].mean())
        balance.update({f"kl_alpha_{a:g}": float(ratio[kept, j].mean()) for j, a in enumerate(ends)})
        kl_info = {"alphas": list(ends), "h_features": h_kl.tolist(), "candidates": kl.tolist(), "kept": kept}
    balance.update(latent_balance(chosen, flat, activation, layers, width))
    steered = [float(x) for x in cfg.random_alphas if float(x) != 1.0]  # alpha 1 adds exact zeros
    pairs = [(s, x) for s in range(cfg.seeds) for x in steered]
    records = sweep_sets(ctx, cfg, lm, taskset, LatentSets(saes, [as_sets[s] for s, _ in pairs], [x for _, x in pairs]),
                         [(f"seed{s}", k) for s in range(cfg.seeds) for k in range(len(steered))], "random latent sets")
    main = committed_sweep(ctx.upstream("sae_steering"), "alpha", {"set": "h-features"})
    full = [float(x) for x in main["settings"]]
    main_records = main["records"]
    grid = sorted({*steered, 1.0})
    ctx.save_items("outcomes", item_rows(
        [{"set": "h-features", "alpha": x} for x in grid] + [{"set": f"seed {s}", "alpha": x} for s, x in pairs],
        [{"compliance": main_records[full.index(x)]["compliance"]} for x in grid] + records, taskset.rows))
    estimates = recompute(ctx.item_rows, cfg.model_dump(mode="json"))
    a = np.asarray(grid, dtype=float)
    M = matrix([main_records[full.index(x)] for x in grid], "compliance")
    neutral = main_records[full.index(1.0)]
    stacked = np.stack([matrix([records[pairs.index((s, x))] if x != 1.0 else neutral for x in grid], "compliance")
                        for s in range(cfg.seeds)])
    real = _slope(a, M)
    seed_slopes = [_slope(a, stacked[k]) for k in range(cfg.seeds)]
    direction = 1.0 if real >= 0 else -1.0
    as_far = [np.isnan(x) or direction * x >= direction * real for x in seed_slopes]
    valid = [x for x in seed_slopes if not np.isnan(x)]
    return Result(estimates=estimates, values={
        "method": "random latents matched on SAE and activation" + (" and KL" if cfg.candidates else ""),
        "seeds": cfg.seeds, "candidates": cfg.candidates, "sided": "one", "balance": balance, "kl": kl_info,
        "match_pool": cfg.match_pool, "activity_h_features": float(activation[chosen].mean()),
        "activity_random": float(np.mean([activation[idx].mean() for idx in flat])),
        "alphas": grid, "sae_slope_same_alphas": real,
        "seed_slopes_pp": [None if np.isnan(x) else float(x) for x in seed_slopes],
        "seed_slope_min": min(valid, default=None), "seed_slope_max": max(valid, default=None),
        "seeds_broken": int(sum(np.isnan(x) for x in seed_slopes)), "seeds_as_far": int(sum(as_far)),
        "rank_p": float((1 + sum(as_far)) / (1 + cfg.seeds)), "n_features": len(h_features),
        "cut_off": cut_off(records)})
