"""The control of the fingerprint: the same features (the fingerprint's chosen layer) and the same
family-held-out ridge regression, fit to attribution ranks permuted within strata of what predicts
the rank besides the fingerprint (format variant x example-length quantile), n_shuffles times, and
scored on the same reported families. A shuffle keeps each variant's ranks exactly and length's
association with the rank nearly so (the balance reports both), so a fingerprint that only reads
length or format does no better than these; the real one's rank among them is
p = (1 + #{shuffles at least as high}) / (1 + n_shuffles). One row per shuffle is committed. The
regression is factored once for the features and the families (pipeline/attribution/ridge.py), so
the shuffles are fit many at a time at about the cost of one fit."""

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


#: Shuffled targets fit in one pass of the factored ridge (a checkpoint after each pass).
SHUFFLES_PER_PASS = 25


def strata(variant: np.ndarray, length: np.ndarray, bins: int) -> np.ndarray:
    """A stratum id per example: its variant crossed with its length quantile bin."""
    edges = np.quantile(length, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.array([])
    length_bin = np.searchsorted(edges, length, side="right")
    _, ids = np.unique(np.stack([np.unique(variant, return_inverse=True)[1], length_bin]), axis=1,
                       return_inverse=True)
    return ids.ravel()


def permute_within(y: np.ndarray, stratum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """y with its entries permuted at random inside each stratum."""
    out = y.copy()
    for s in np.unique(stratum):
        idx = np.flatnonzero(stratum == s)
        out[idx] = y[rng.permutation(idx)]
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import spearman
    from pipeline.attribution.ridge import GroupedRidge

    cfg = Config(**config)
    up = ctx.upstream("fingerprint")
    X = up.arrays("features")["features"]
    rows = up.items("examples")
    y = np.array([r["rank"] for r in rows])
    groups = np.array([r["family"] for r in rows])
    variant = np.array([r["variant"] for r in rows])
    length = np.array([r["n_tokens"] for r in rows], dtype=float)
    report = np.array([r["reported"] for r in rows])
    stratum = strata(variant, length, cfg.length_bins)
    rng = np.random.default_rng([cfg.seed, 13])
    ckpt = ctx.checkpoint("shuffles")
    shuffled = [permute_within(y, stratum, rng) for _ in range(cfg.n_shuffles)]  # all drawn, so a resumed run draws the same
    todo = [s for s in range(cfg.n_shuffles) if str(s) not in ckpt]
    ridge = GroupedRidge(X, groups, cfg.alphas) if todo else None  # the SVDs of every fold, once for all shuffles
    chunks = [todo[i: i + SHUFFLES_PER_PASS] for i in range(0, len(todo), SHUFFLES_PER_PASS)]
    for chunk in ctx.progress(chunks, total=len(chunks), desc=f"shuffled ranks ({SHUFFLES_PER_PASS} a pass)"):
        preds = ridge.predict(np.stack([shuffled[s] for s in chunk], axis=1))
        for j, s in enumerate(chunk):
            y_s = shuffled[s]
            ckpt[str(s)] = {"spearman": spearman(preds[report, j], y_s[report]),
                            "length_spearman": spearman(length[report], y_s[report]),
                            "variant_gap": max(abs(y_s[report & (variant == v)].mean() - y[report & (variant == v)].mean())
                                               for v in np.unique(variant[report]))}
    out = [{"shuffle": s, "n": int(report.sum()), "n_strata": int(len(np.unique(stratum))),
            **{k: round(float(v), 6) for k, v in ckpt[str(s)].items()}} for s in range(cfg.n_shuffles)]
    ctx.save_items("shuffles", out)
    return summarize(ctx.item_rows["shuffles"], cfg, float(up.result.estimates["spearman"].value),
                     spearman(length[report], y[report]))


def shuffle_estimate(rows: list[dict[str, Any]], cfg: Config, n: int, n_strata: int) -> Estimate:
    """The shuffles' mean Spearman on the reported families, with their central interval."""
    rhos = np.array([r["spearman"] for r in rows])
    alpha = (1 - cfg.level) / 2
    low, high = np.quantile(rhos, [alpha, 1 - alpha])
    mean = float(rhos.mean())
    return Estimate(value=mean, ci=(min(float(low), mean), max(float(high), mean)), level=cfg.level, n=n,
                    method="permutation-percentile",
                    unit=f"reported pool examples; {len(rhos)} shuffles within {n_strata} strata")


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The control's estimate from its committed rows (one per shuffle, each with the number of
    reported examples and strata it was scored on)."""
    rows = items["shuffles"]
    return {"spearman": shuffle_estimate(rows, Config(**config), rows[0]["n"], rows[0]["n_strata"])}


def summarize(rows: list[dict[str, Any]], cfg: Config, real: float, real_length: float) -> Result:
    from pipeline.attribution.estimates import rank_p

    rhos = np.array([r["spearman"] for r in rows])
    length_shift = float(np.mean([r["length_spearman"] for r in rows]) - real_length)
    return Result(
        estimates={"spearman": shuffle_estimate(rows, cfg, rows[0]["n"], rows[0]["n_strata"])},
        values={"n_shuffles": cfg.n_shuffles, "n_strata": rows[0]["n_strata"],
                "shuffle_spearman": np.round(rhos, 4).tolist(), "shuffle_max": float(rhos.max()),
                "real_spearman": real, "rank_p": rank_p(real, rhos), "n_at_or_above": int((rhos >= real).sum()),
                # how far the shuffled ranks drift from the real ones on the covariates they are held to
                "balance": {"length": round(length_shift, 4),
                            "variant": round(float(max(r["variant_gap"] for r in rows)), 4)},
                "length_spearman_real": round(real_length, 4)},
    )
