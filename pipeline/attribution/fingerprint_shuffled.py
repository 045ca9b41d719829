"""The control of the fingerprint: the same features and the same grouped ridge regression, fit to
attribution ranks permuted at random across the pool (n_shuffles permutations). A fingerprint that
only fits noise reaches the same out-of-fold Spearman as these; the real one's rank among them is
p = (1 + #{shuffles at least as high}) / (1 + n_shuffles)."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Estimate, Result
from pipeline.attribution.config import FingerprintConfig, GameConfig
from pipeline.attribution.config import ShuffledConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "fingerprint": ("pipeline.attribution.fingerprint", cfg.upstream(FingerprintConfig))}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import grouped_predictions, rank_p, spearman

    cfg = Config(**config)
    up = ctx.upstream("fingerprint")
    data = up.arrays("features")
    X, y, index = data["features"], data["target"], data["index"]
    examples = ctx.upstream("pool").json("examples")
    groups = np.array([examples[i]["family"] for i in index])
    rng = np.random.default_rng([cfg.seed, 13])
    ckpt = ctx.checkpoint("shuffles")
    rhos = []
    for s in ctx.progress(range(cfg.n_shuffles), total=cfg.n_shuffles, desc="shuffled ranks"):
        perm = rng.permutation(len(y))  # drawn every step, so a resumed run draws the same ones
        if str(s) not in ckpt:
            ckpt[str(s)] = spearman(grouped_predictions(X, y[perm], groups, cfg.alphas, cfg.seed), y[perm])
        rhos.append(float(ckpt[str(s)]))
    rhos_arr = np.array(rhos)
    real = float(up.result.estimates["spearman"].value)
    alpha = (1 - cfg.level) / 2
    low, high = np.quantile(rhos_arr, [alpha, 1 - alpha])
    mean = float(rhos_arr.mean())
    return Result(
        estimates={"spearman": Estimate(value=mean, ci=(min(float(low), mean), max(float(high), mean)),
                                        level=cfg.level, n=len(y), method="permutation-percentile",
                                        unit=f"pool examples; {cfg.n_shuffles} shuffles")},
        values={"n_shuffles": cfg.n_shuffles, "shuffle_spearman": np.round(rhos_arr, 4).tolist(),
                "shuffle_max": float(rhos_arr.max()), "real_spearman": real, "rank_p": rank_p(real, rhos_arr),
                "n_at_or_above": int((rhos_arr >= real).sum())},
    )
