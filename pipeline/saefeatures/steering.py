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
                 activation magnitude (decile of mean activation over the detector's training
                 questions), one set per seed, swept over fewer alphas; the SAE slope's rank among
                 the seeds' slopes is a p-value (a seed that breaks the answers counts as reaching it)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.steering.config import SweepConfig, TasksConfig

PACKAGES = ("sae-lens",)


class Config(SweepConfig):
    detector: dict[str, Any] = Field(default_factory=dict, description="Settings of the SAE detector node "
                                     "beyond profile and seed (pipeline.saefeatures.detector.Config).")
    features: Literal["sae", "random"] = Field("sae", description="sae: the H-features; random: matched "
                                               "random latents (the control).")
    externality: bool = False
    seeds: int = Field(32, ge=1, description="Random latent sets (features: random).")
    random_alphas: tuple[float, ...] = Field((0.0, 1.0, 2.0, 3.0), description="Alphas of each random set.")
    activity_bins: int = Field(10, ge=1)


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
        out["sae_steering"] = ("pipeline.saefeatures.steering", {**config, "features": "sae"})
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


def by_layer(latents: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for f in latents:
        out.setdefault(int(f["layer"]), []).append(int(f["index"]))
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.dictionary import load_saes
    from pipeline.steering.neurons import setup, sweep
    from pipeline.steering.summary import _slope, matrix, minimum_detectable, summarize

    cfg = Config(**config)
    lm, taskset = setup(cfg, ctx, ("compliance",))
    saes = {d.layer: d for d in load_saes(ctx.upstream("saes"))}
    h_features = ctx.upstream("detector").result.values["h_features"]
    if not h_features:
        raise ValueError("the SAE detector kept no positive-weight latent: nothing to scale")
    clusters = taskset.clusters()["compliance"]
    if cfg.features == "random":
        return run_random(cfg, ctx, lm, taskset, saes, h_features, clusters)
    records = sweep(ctx, cfg, lm, taskset, lambda a: scale_features(lm, saes, by_layer(h_features), a), "h-features")
    estimates, values = summarize(cfg.alphas, records, ("compliance",), {"compliance": clusters}, level=cfg.level,
                                  seed=cfg.seed, neutral=list(cfg.alphas).index(1.0), target=int(np.argmax(cfg.alphas)))
    neurons = ctx.upstream("neurons").json("generations")
    if [r["item"]["id"] for r in neurons["rows"]["compliance"]] != [r["item"]["id"] for r in taskset.rows["compliance"]]:
        raise RuntimeError("the H-neuron sweep was scored on other compliance items")
    a = np.asarray(cfg.alphas, dtype=float)
    M, H = matrix(records, "compliance"), matrix(neurons["records"], "compliance")
    gap = stats.cluster_bootstrap(lambda idx: _slope(a, M[idx]) - _slope(a, H[idx]), clusters, level=cfg.level,
                                  seed=cfg.seed, unit="items")
    if gap is not None:
        estimates["slope_minus_hneuron_pp"] = gap
    ctx.save_json("generations", {"rows": taskset.rows, "records": records})
    values.update({"method": "SAE H-features (decoded delta)", "n_features": len(h_features),
                   "layers": sorted({f["layer"] for f in h_features}), "hneuron_slope_pp": _slope(a, H),
                   "minimum_detectable": {"compliance_slope_pp": minimum_detectable(
                       estimates.get("compliance_slope_pp"), cfg.power, cfg.test_alpha)}})
    return Result(estimates=estimates, values=values)


def run_random(cfg: Config, ctx: Any, lm: Any, taskset: Any, saes: dict[int, Any], h_features: list[dict[str, Any]],
               clusters: list[np.ndarray]) -> Result:
    from pipeline.hneurons.probing import activity_bins, matched_random_set
    from pipeline.steering.neurons import sweep
    from pipeline.steering.summary import _slope, matrix

    det = ctx.upstream("detector")
    X, widths, layers = det.arrays("features")["x"], det.result.values["widths"], det.result.values["layers"]
    row = {q: i for i, q in enumerate(det.result.values["ids"])}
    train = np.array([row[q] for q in det.result.values["first_train_ids"]])  # as for the H-neurons
    width = widths[0]
    bins = activity_bins(X[train].mean(axis=0), width, cfg.activity_bins)
    chosen = np.array([f["flat"] for f in h_features])
    a = np.asarray(cfg.random_alphas, dtype=float)
    matrices = []
    for s in range(cfg.seeds):
        idx = matched_random_set(chosen, bins, width, np.random.default_rng([cfg.seed, 3000 + s]))
        picked = by_layer([{"layer": layers[i // width], "index": i % width} for i in idx.tolist()])
        records = sweep(ctx, cfg, lm, taskset, lambda al, p=picked: scale_features(lm, saes, p, al), f"seed{s}",
                        settings=cfg.random_alphas)
        matrices.append(matrix(records, "compliance"))
    stacked = np.stack(matrices)  # (seeds, items, alphas)
    main = ctx.upstream("sae_steering")
    full = list(main.result.values["alphas"])
    M = matrix([main.json("generations")["records"][full.index(x)] for x in cfg.random_alphas], "compliance")
    real = _slope(a, M)
    seed_slopes = [_slope(a, stacked[k]) for k in range(cfg.seeds)]
    direction = 1.0 if real >= 0 else -1.0
    as_far = [np.isnan(x) or direction * x >= direction * real for x in seed_slopes]

    def mean_slope(seeds: np.ndarray, items: np.ndarray) -> float:
        slopes = [_slope(a, stacked[k][items]) for k in seeds]
        return float(np.nanmean(slopes)) if not all(np.isnan(slopes)) else float("nan")

    est = stats.seed_cluster_bootstrap(mean_slope, cfg.seeds, clusters, level=cfg.level, seed=cfg.seed,
                                       unit="items", n_resamples=400)
    valid = [x for x in seed_slopes if not np.isnan(x)]
    return Result(estimates={"compliance_slope_pp": est} if est is not None else {}, values={
        "method": "random latents matched on SAE and activation", "seeds": cfg.seeds,
        "alphas": list(map(float, cfg.random_alphas)), "sae_slope_same_alphas": real,
        "seed_slopes_pp": [None if np.isnan(x) else float(x) for x in seed_slopes],
        "seed_slope_min": min(valid, default=None), "seed_slope_max": max(valid, default=None),
        "seeds_broken": int(sum(np.isnan(x) for x in seed_slopes)), "seeds_as_far": int(sum(as_far)),
        "rank_p": float((1 + sum(as_far)) / (1 + cfg.seeds)), "n_features": len(h_features)})
