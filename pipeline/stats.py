"""Interval estimates for claims, via scipy (bootstrap, binomial intervals) and scikit-learn.

Every function returns a `claims.Estimate`: the value, its interval at the stated level, its n,
the method, and what n counts. Proportions use intervals that stay inside [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from claims import Estimate

N_RESAMPLES = 2000


def proportion(successes: int, n: int, level: float = 0.95, unit: str = "items") -> Estimate:
    """A proportion with its Wilson score interval (stays in [0, 1], sane at 0 and n)."""
    if n == 0:
        return Estimate(value=None, ci=None, level=None, n=0, method="wilson", unit=unit)
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return Estimate(value=successes / n, ci=(float(ci.low), float(ci.high)), level=level, n=int(n),
                    method="wilson", unit=unit)


def bootstrap_items(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    level: float = 0.95,
    seed: int = 0,
    unit: str = "items",
    method: str = "percentile",
    n_resamples: int = N_RESAMPLES,
) -> Estimate:
    """Bootstrap a statistic of item indices: resampling rows keeps paired measurements together
    (the same item across alphas, or across two probes). `statistic(idx)` gets an index array."""
    value = float(statistic(np.arange(n)))
    res = stats.bootstrap(
        (np.arange(n),),
        lambda idx: statistic(idx.astype(int)),
        vectorized=False,
        paired=False,
        confidence_level=level,
        n_resamples=n_resamples,
        method=method,
        random_state=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Estimate(value=value, ci=(min(low, value), max(high, value)), level=level, n=n,
                    method=f"bootstrap-{method}", unit=unit)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score_pos > score_neg) + half the ties: the AUROC (Mann-Whitney), averaged over columns
    when scores are (n, m) (e.g. one column per random seed)."""
    diff = pos[:, None, ...] - neg[None, :, ...]
    return float(((diff > 0).mean(axis=(0, 1)) + 0.5 * (diff == 0).mean(axis=(0, 1))).mean())


def auroc(y_true: np.ndarray, scores: np.ndarray, *, level: float = 0.95, seed: int = 0,
          unit: str = "questions", n_resamples: int = N_RESAMPLES) -> Estimate:
    """AUROC with a class-stratified percentile bootstrap over items: each class is resampled on its
    own, so no resample lacks a class. `scores` (n,) or (n, m): with m columns the statistic is the
    mean AUROC over columns, and items are resampled jointly across them (paired)."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[y_true], scores[~y_true]
    value = _auc(pos, neg)
    res = stats.bootstrap(
        (np.arange(len(pos)), np.arange(len(neg))),
        lambda i, j: _auc(pos[i.astype(int)], neg[j.astype(int)]),
        vectorized=False, paired=False, confidence_level=level, n_resamples=n_resamples,
        method="percentile", random_state=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Estimate(value=value, ci=(min(low, value), max(high, value)), level=level, n=len(y_true),
                    method="bootstrap-stratified-percentile", unit=unit)


def auroc_difference(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, *, level: float = 0.95,
                     seed: int = 0, unit: str = "questions") -> Estimate:
    """AUROC(a) - AUROC(b) on the same items, with a paired, class-stratified bootstrap; b may be
    (n, m), read as the mean AUROC of m scorers (e.g. random-neuron probes over seeds)."""
    y_true = np.asarray(y_true).astype(bool)
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    pa, na, pb, nb = a[y_true], a[~y_true], b[y_true], b[~y_true]

    def diff(i: np.ndarray, j: np.ndarray) -> float:
        i, j = i.astype(int), j.astype(int)
        return _auc(pa[i], na[j]) - _auc(pb[i], nb[j])

    value = diff(np.arange(len(pa)), np.arange(len(na)))
    res = stats.bootstrap((np.arange(len(pa)), np.arange(len(na))), diff, vectorized=False, paired=False,
                          confidence_level=level, n_resamples=N_RESAMPLES, method="percentile",
                          random_state=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Estimate(value=value, ci=(min(low, value), max(high, value)), level=level, n=len(y_true),
                    method="bootstrap-paired-stratified-percentile", unit=unit)


def slope(alphas: np.ndarray, outcomes: np.ndarray) -> float:
    """OLS slope of the per-alpha mean of `outcomes` (items x alphas) on alpha."""
    means = np.nanmean(outcomes, axis=0)
    a = np.asarray(alphas, dtype=float)
    return float(np.polyfit(a, means, 1)[0])


def min_detectable_difference(n: int, p0: float = 0.5, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference in a proportion detectable between two independent arms of n items
    each (two-sided normal approximation at p0): what a null result can rule out."""
    if n <= 0:
        return float("nan")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * np.sqrt(2 * p0 * (1 - p0) / n))


# ---- hierarchical bootstrap: over split seeds, then over items within each split -------------------
def _auc_1d(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def _resample_split(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """Item indices of one split, resampled within each class (every resample keeps both classes)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    return np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])


def hierarchical(splits: list[dict[str, np.ndarray]], statistic: Callable[[dict[str, np.ndarray]], float], *,
                 level: float = 0.95, seed: int = 0, unit: str = "test questions",
                 n_resamples: int = N_RESAMPLES) -> Estimate:
    """The mean over splits of `statistic(split)`, with a two-level percentile bootstrap: split
    seeds are resampled, then the items of each drawn split (within each class, `y` boolean), so
    the interval carries the variance of the design (which subjects were held out) as well as of
    the items. Each split is a dict of equal-length arrays with a boolean `y`. (scipy's bootstrap
    resamples one level only, hence this.)"""
    rng = np.random.default_rng(seed)
    value = float(np.mean([statistic(s) for s in splits]))
    draws = np.empty(n_resamples)
    for r in range(n_resamples):
        picked = rng.integers(len(splits), size=len(splits))
        total = 0.0
        for k in picked:
            s = splits[k]
            idx = _resample_split(rng, s["y"])
            total += statistic({name: arr[idx] for name, arr in s.items()})
        draws[r] = total / len(splits)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    n = int(sum(len(s["y"]) for s in splits))
    return Estimate(value=value, ci=(min(float(low), value), max(float(high), value)), level=level, n=n,
                    method="bootstrap-hierarchical-percentile", unit=f"{unit} over {len(splits)} splits")


def hierarchical_auroc(splits: list[tuple[np.ndarray, np.ndarray]], **kwargs) -> Estimate:
    """Mean held-out AUROC over splits [(y, scores), ...] with a split-then-item bootstrap interval."""
    data = [{"y": np.asarray(y).astype(bool), "s": np.asarray(s, float)} for y, s in splits]
    return hierarchical(data, lambda d: _auc_1d(d["y"], d["s"]), **kwargs)


def hierarchical_auroc_difference(splits: list[tuple[np.ndarray, np.ndarray, np.ndarray]], **kwargs) -> Estimate:
    """Mean over splits of AUROC(a) - AUROC(b) on the same test items [(y, a, b), ...], paired."""
    data = [{"y": np.asarray(y).astype(bool), "a": np.asarray(a, float), "b": np.asarray(b, float)}
            for y, a, b in splits]
    return hierarchical(data, lambda d: _auc_1d(d["y"], d["a"]) - _auc_1d(d["y"], d["b"]), **kwargs)


def hierarchical_accuracy(splits: list[tuple[np.ndarray, np.ndarray]], **kwargs) -> Estimate:
    """Mean held-out accuracy of 0.5-thresholded scores over splits [(y, scores), ...]."""
    data = [{"y": np.asarray(y).astype(bool), "s": np.asarray(s, float)} for y, s in splits]
    return hierarchical(data, lambda d: float(((d["s"] >= 0.5) == d["y"]).mean()), **kwargs)


# ---- cluster bootstrap: items that share a subject move together ----------------------------------
def clusters_of(labels: list[str]) -> list[np.ndarray]:
    """Item indices grouped by cluster label, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return [np.array(v) for v in groups.values()]


def cluster_bootstrap(statistic: Callable[[np.ndarray], float], clusters: list[np.ndarray], *, level: float = 0.95,
                      seed: int = 0, unit: str = "items", n_resamples: int = N_RESAMPLES) -> Estimate | None:
    """A statistic of item indices with an interval that resamples whole clusters (e.g. the items
    about one subject), so that items that share a subject are not counted as independent. None
    when the statistic cannot be computed on the data (e.g. no item parsed)."""
    everything = np.concatenate(clusters) if clusters else np.array([], dtype=int)
    value = statistic(everything)
    if value is None or not np.isfinite(value):
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        picked = rng.integers(len(clusters), size=len(clusters))
        v = statistic(np.concatenate([clusters[k] for k in picked]))
        if v is not None and np.isfinite(v):
            draws.append(v)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value=float(value), ci=(min(float(low), value), max(float(high), value)), level=level,
                    n=int(len(everything)), method="bootstrap-cluster-percentile",
                    unit=f"{unit} in {len(clusters)} subject clusters")


def seed_cluster_bootstrap(statistic: Callable[[np.ndarray, np.ndarray], float], n_seeds: int,
                           clusters: list[np.ndarray], *, level: float = 0.95, seed: int = 0, unit: str = "items",
                           n_resamples: int = 1000) -> Estimate | None:
    """Two levels: random seeds (e.g. random neuron sets) are resampled, then subject clusters of
    items; `statistic(seed_indices, item_indices)`. The interval carries the variance over random
    draws as well as over items."""
    everything = np.concatenate(clusters)
    value = statistic(np.arange(n_seeds), everything)
    if value is None or not np.isfinite(value):
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        seeds = rng.integers(n_seeds, size=n_seeds)
        items = np.concatenate([clusters[k] for k in rng.integers(len(clusters), size=len(clusters))])
        v = statistic(seeds, items)
        if v is not None and np.isfinite(v):
            draws.append(v)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value=float(value), ci=(min(float(low), value), max(float(high), value)), level=level,
                    n=int(len(everything)), method="bootstrap-seed-cluster-percentile",
                    unit=f"{unit} in {len(clusters)} subject clusters x {n_seeds} seeds")
