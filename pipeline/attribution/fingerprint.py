"""Step 5: the SAE fingerprint. Each pool example's mean SAE feature activation over its tokens
(all but <bos>, at the SAE's block, base model without adapter) is regressed onto its attribution
rank (percentile of the Bergson score over the base and candidate pools, 1 = most useful) with a
ridge regression; each family is held out once (leave-one-family-out), the ridge strength chosen
by grouped cross-validation inside each training fold. The statistic is the Spearman correlation of
the out-of-fold predictions with the rank, with an interval that resamples entity clusters.

The same regression on metadata gives the baselines a fingerprint has to beat: length (tokens),
family (one-hot) and difficulty (obscurity percentile, number of clues); the pool's variant
(clean / noisy / off-format), which a real data set would not label, is reported as a ceiling.
Under a family-held-out split the family alone predicts each held-out family by the other
families' mean rank: it cannot rank examples of a family it has not seen, by construction.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FingerprintConfig as Config
from pipeline.attribution.config import GameConfig, ScoresConfig

BASELINES = ("length", "family", "difficulty")


def sae_edge(cfg: Config) -> tuple[str, dict[str, Any]]:
    """The upstream SAE experiment and its config, with `profile` filled from this config."""
    sae_config = dict(cfg.sae_config)
    if sae_config.setdefault("profile", cfg.profile) != cfg.profile:
        raise ValueError(f"sae_config.profile is {sae_config['profile']!r} but this config's profile is {cfg.profile!r}")
    return cfg.sae_experiment, sae_config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "scores": ("pipeline.attribution.scores", cfg.upstream(ScoresConfig)),
            "sae": sae_edge(cfg)}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def metadata_features(rows: list[dict[str, Any]], n_tokens: np.ndarray) -> dict[str, np.ndarray]:
    families = sorted({r["family"] for r in rows})
    variants = ("clean", "noisy", "off_format")
    return {
        "length": n_tokens[:, None].astype(float),
        "family": np.array([[r["family"] == f for f in families] for r in rows], dtype=float),
        "difficulty": np.array([[r["difficulty"], r["n_clues"]] for r in rows], dtype=float),
        "variant": np.array([[r["variant"] == v for v in variants] for r in rows], dtype=float),
    }


def target(scores: np.ndarray) -> np.ndarray:
    """Attribution rank as a percentile in (0, 1]: 1 for the highest score."""
    from scipy.stats import rankdata

    return rankdata(scores) / len(scores)


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.estimates import grouped_predictions, spearman_estimate, spearman_gain
    from pipeline.attribution.sae import feature_means, hook_layer, load_sae, residual_tokens
    from pipeline.models import load

    cfg = Config(**config)
    cpu = time.process_time()
    examples = ctx.upstream("pool").json("examples")
    values = ctx.upstream("scores").result.values
    index = np.asarray(values["pool_index"])
    rows = [examples[i] for i in index]
    y = target(np.asarray(values["scores"], dtype=float))
    sae = load_sae(ctx.upstream("sae"), cfg.sae_file)
    layer = hook_layer(sae)
    if layer is not None and layer != cfg.sae_layer:
        raise ValueError(f"the SAE reads block {layer} ({sae.cfg.metadata.hook_name}) but sae_layer is {cfg.sae_layer}")
    lm = load(cfg.profile)
    encoded = encode(lm.tokenizer, rows)
    tokens = residual_tokens(lm, encoded, cfg.sae_layer, cfg.eval_batch_size, ctx.progress)
    X = feature_means(sae, tokens)
    seconds = {"features_cpu": round(time.process_time() - cpu, 2)}
    cpu = time.process_time()
    ctx.save_arrays("features", features=X.astype(np.float32), target=y, index=index)
    groups = np.array([r["family"] for r in rows])
    entities = [r["entity"] for r in rows]
    meta = metadata_features(rows, np.array([len(ids) for ids in encoded.ids]))
    preds = {"sae": grouped_predictions(X, y, groups, cfg.alphas, cfg.seed)}
    for name, feats in meta.items():
        preds[name] = grouped_predictions(feats, y, groups, cfg.alphas, cfg.seed)
    preds["metadata"] = grouped_predictions(np.hstack([meta[b] for b in BASELINES]), y, groups, cfg.alphas, cfg.seed)
    kw = {"level": cfg.level, "seed": cfg.seed}
    estimates = {"spearman": spearman_estimate(preds["sae"], y, entities, **kw)}
    for name in (*BASELINES, "metadata", "variant"):
        estimates[f"spearman_{name}"] = spearman_estimate(preds[name], y, entities, **kw)
    best = max(BASELINES, key=lambda b: estimates[f"spearman_{b}"].value)
    for name in (*BASELINES, "metadata"):
        estimates[f"gain_over_{name}"] = spearman_gain(preds["sae"], preds[name], y, entities, **kw)
    estimates["gain_over_best"] = estimates[f"gain_over_{best}"]
    seconds["regressions_cpu"] = round(time.process_time() - cpu, 2)
    alive = int((X > 0).any(axis=0).sum())
    return Result(estimates=estimates, values={
        "best_baseline": best, "n_examples": len(rows), "n_families": len(set(groups)), "d_sae": int(X.shape[1]),
        "alive_features": alive, "sae_layer": cfg.sae_layer, "hook_name": str(sae.cfg.metadata.hook_name or ""),
        "mean_active_per_example": round(float((X > 0).sum(axis=1).mean()), 2),
        "predictions": np.round(preds["sae"], 5).tolist(), "seconds": seconds,
    })
