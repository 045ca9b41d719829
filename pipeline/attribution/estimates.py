"""Intervals of the attribution study: success rates over several finetunes, the gain of one arm
over another, and out-of-fold Spearman correlations of a grouped ridge regression.

Finetunes vary (data order, the random subset drawn) and evaluation items share entities, so the
intervals resample both: runs within each arm, and entity clusters of evaluation items, the same
clusters for both arms (paired). Spearman intervals resample entity clusters of pool examples.
"""

from __future__ import annotations

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
    """Mean success over runs (R, n items) with runs and entity clusters resampled."""
    runs = np.asarray(runs, dtype=float)
    clusters = clusters_of(entities)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        r = rng.integers(len(runs), size=len(runs))
        items = np.concatenate([clusters[c] for c in rng.integers(len(clusters), size=len(clusters))])
        draws[b] = runs[np.ix_(r, items)].mean()
    value = float(runs.mean())
    return Estimate(value=value, ci=_interval(draws, value, level), level=level, n=runs.shape[1],
                    method="bootstrap-run-cluster-percentile",
                    unit=f"evaluation items in {len(clusters)} entity clusters x {len(runs)} finetunes")


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


def rank_p(value: float, null: np.ndarray) -> float:
    """(1 + #{null draws >= value}) / (1 + #draws): how often the control does at least as well."""
    null = np.asarray(null, dtype=float)
    return float((1 + (null >= value).sum()) / (1 + len(null)))


# ---- grouped ridge regression onto a target, scored by out-of-fold Spearman ---------------------
def grouped_predictions(X: np.ndarray, y: np.ndarray, groups: np.ndarray, alphas: tuple[float, ...],
                        seed: int = 0) -> np.ndarray:
    """Out-of-fold ridge predictions: each group is held out once (leave-one-group-out); inside each
    training fold, alpha is chosen by grouped cross-validation on that fold's groups."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold, LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, groups = np.asarray(X, dtype=float), np.asarray(y, dtype=float), np.asarray(groups)
    out = np.empty(len(y))
    for train, test in LeaveOneGroupOut().split(X, y, groups):
        inner = min(5, len(np.unique(groups[train])))
        model = make_pipeline(StandardScaler(), Ridge())
        if inner >= 2 and len(alphas) > 1:
            search = GridSearchCV(model, {"ridge__alpha": list(alphas)}, cv=GroupKFold(n_splits=inner),
                                  scoring="neg_mean_squared_error")
            search.fit(X[train], y[train], groups=groups[train])
            model = search.best_estimator_
        else:
            model.set_params(ridge__alpha=alphas[0]).fit(X[train], y[train])
        out[test] = model.predict(X[test])
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
