"""Intervals of the attribution study: success rates over several finetunes, the gain of one arm
over another, and out-of-fold Spearman correlations of a grouped ridge regression.

Finetunes vary (data order, the random subset drawn) and evaluation items share entities, so the
intervals resample both: runs within each arm, and entity clusters of evaluation items, the same
clusters for both arms (paired). Spearman intervals resample entity clusters of pool examples.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy import stats as sps

from claims import Estimate
from pipeline.stats import N_RESAMPLES, clusters_of


def _interval(draws: np.ndarray, value: float, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return min(float(low), value), max(float(high), value)


def arm_success(runs: np.ndarray, entities: list[str], *, level: float, seed: int,
                n_resamples: int = N_RESAMPLES) -> Estimate:
    """Mean success over runs (R, n items) with runs and entity clusters resampled. When every item
    of every run has the same outcome (0 of 200), resampling has nothing to vary and would give a
    zero-width interval: the Wilson interval with the number of entity clusters as n is used then."""
    from pipeline.stats import proportion

    runs = np.asarray(runs, dtype=float)
    clusters = clusters_of(entities)
    value = float(runs.mean())
    unit = f"evaluation items in {len(clusters)} entity clusters x {len(runs)} finetunes"
    if np.all(runs == runs.flat[0]):
        wilson = proportion(round(value * len(clusters)), len(clusters), level)
        return Estimate(value=value, ci=wilson.ci, level=level, n=runs.shape[1], method="wilson-clusters", unit=unit)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        r = rng.integers(len(runs), size=len(runs))
        items = np.concatenate([clusters[c] for c in rng.integers(len(clusters), size=len(clusters))])
        draws[b] = runs[np.ix_(r, items)].mean()
    return Estimate(value=value, ci=_interval(draws, value, level), level=level, n=runs.shape[1],
                    method="bootstrap-run-cluster-percentile", unit=unit)


def arm_gain(top: np.ndarray, rand: np.ndarray, entities: list[str], *, level: float, seed: int,
             n_resamples: int = N_RESAMPLES) -> Estimate:
    """Mean success of `top` (S, n) minus that of `rand` (R, n) on the same items: runs resampled
    within each arm, entity clusters resampled once for both (paired)."""
    top, rand = np.asarray(top, dtype=float), np.asarray(rand, dtype=float)
    clusters = clusters_of(entities)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        s = rng.integers(len(top), size=len(top))
        r = rng.integers(len(rand), size=len(rand))
        items = np.concatenate([clusters[c] for c in rng.integers(len(clusters), size=len(clusters))])
        draws[b] = top[np.ix_(s, items)].mean() - rand[np.ix_(r, items)].mean()
    value = float(top.mean() - rand.mean())
    return Estimate(value=value, ci=_interval(draws, value, level), level=level, n=top.shape[1],
                    method="bootstrap-paired-run-cluster-percentile",
                    unit=f"evaluation items in {len(clusters)} entity clusters; {len(top)} vs {len(rand)} finetunes")


def mde(estimate: Estimate) -> float:
    """The effect a design like this one detects with 80 % power in a two-sided 5 % test: 2.8
    standard errors, the standard error read off the estimate's interval (its width over 2 z)."""
    z = float(sps.norm.ppf(1 - (1 - estimate.level) / 2))
    return round(2.8 * (estimate.ci[1] - estimate.ci[0]) / (2 * z), 4)


def rank_p(value: float, null: np.ndarray) -> float:
    """(1 + #{null draws >= value}) / (1 + #draws): how often the control does at least as well."""
    null = np.asarray(null, dtype=float)
    return float((1 + (null >= value).sum()) / (1 + len(null)))


# ---- grouped ridge regression onto a target, scored by out-of-fold Spearman ---------------------
def ridge_path(X: np.ndarray, y: np.ndarray, X_new: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge predictions on X_new for every alpha at once: (n_new, n_alphas). Features are
    standardised with X's mean and std (constant ones dropped: they standardise to zero), the
    intercept is y's mean, and the solution comes from one SVD of X:
    coef = V diag(s / (s^2 + alpha)) U^T (y - mean y), the same as sklearn's StandardScaler + Ridge."""
    mu, sd = X.mean(axis=0), X.std(axis=0)
    keep = sd > 0
    A, B = (X[:, keep] - mu[keep]) / sd[keep], (X_new[:, keep] - mu[keep]) / sd[keep]
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    shrink = s[None, :] / (s[None, :] ** 2 + np.asarray(alphas, dtype=float)[:, None])  # (n_alphas, rank)
    coef = (shrink * (U.T @ (y - y.mean()))[None, :]) @ Vt  # (n_alphas, n_features)
    return y.mean() + B @ coef.T


def grouped_predictions(X: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: tuple[float, ...],
                        seed: int = 0) -> np.ndarray:
    """Out-of-fold ridge predictions: each group is held out once (leave-one-group-out); inside each
    training fold, alpha is chosen by grouped cross-validation (up to 5 folds) on that fold's groups
    (mean squared error)."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
    from threadpoolctl import threadpool_limits

    X, y, groups = np.asarray(X, dtype=float), np.asarray(y, dtype=float), np.asarray(groups)
    grid = np.asarray(alphas, dtype=float)
    out = np.empty(len(y))
    with threadpool_limits(limits=int(os.environ.get("CLAIMS_TORCH_THREADS") or os.cpu_count() or 1)):
        for train, test in LeaveOneGroupOut().split(X, y, groups):
            inner = min(5, len(np.unique(groups[train])))
            best = grid[0]
            if inner >= 2 and len(grid) > 1:
                errors = np.zeros(len(grid))
                for fit, held in GroupKFold(n_splits=inner).split(X[train], y[train], groups[train]):
                    pred = ridge_path(X[train][fit], y[train][fit], X[train][held], grid)
                    errors += ((pred - y[train][held][:, None]) ** 2).sum(axis=0)
                best = grid[int(np.argmin(errors))]
            out[test] = ridge_path(X[train], y[train], X[test], np.array([best]))[:, 0]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    rho = sps.spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def spearman_estimate(pred: np.ndarray, target: np.ndarray, entities: list[str], *, level: float, seed: int,
                      n_resamples: int = N_RESAMPLES) -> Estimate:
    """Spearman(pred, target) with entity clusters of examples resampled."""
    clusters = clusters_of(entities)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = np.concatenate([clusters[c] for c in rng.integers(len(clusters), size=len(clusters))])
        draws[b] = spearman(pred[idx], target[idx])
    value = spearman(pred, target)
    return Estimate(value=value, ci=_interval(draws, value, level), level=level, n=len(pred),
                    method="bootstrap-cluster-percentile", unit=f"pool examples in {len(clusters)} entity clusters")


def spearman_gain(pred_a: np.ndarray, pred_b: np.ndarray, target: np.ndarray, entities: list[str], *,
                  level: float, seed: int, n_resamples: int = N_RESAMPLES) -> Estimate:
    """Spearman(a, target) - Spearman(b, target) on the same examples, clusters resampled (paired)."""
    clusters = clusters_of(entities)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = np.concatenate([clusters[c] for c in rng.integers(len(clusters), size=len(clusters))])
        draws[b] = spearman(pred_a[idx], target[idx]) - spearman(pred_b[idx], target[idx])
    value = spearman(pred_a, target) - spearman(pred_b, target)
    return Estimate(value=value, ci=_interval(draws, value, level), level=level, n=len(target),
                    method="bootstrap-paired-cluster-percentile",
                    unit=f"pool examples in {len(clusters)} entity clusters")


def composition(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Share of each variant among examples."""
    n = max(1, len(rows))
    return {v: round(sum(r["variant"] == v for r in rows) / n, 4) for v in ("clean", "noisy", "off_format")}
