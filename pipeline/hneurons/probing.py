"""Logistic probes on neuron features (scikit-learn), with C chosen by subject-grouped CV on train,
and the neuron sets the controls draw: random sets matched on layer and activity, and sets
ranked one neuron at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ProbeFit:
    C: float
    coef: np.ndarray  # (n_features,) in standardized units
    test_scores: np.ndarray  # P(hallucinated) on the test rows
    sweep: list[dict[str, float]]  # per C: cv_auroc (mean, sd over folds)


def _model(C: float, penalty: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if penalty == "l1":
        clf = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", max_iter=2000, random_state=seed)
    else:
        clf = LogisticRegression(C=C, l1_ratio=0.0, solver="lbfgs", max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), clf)


def _fold_auroc(X: np.ndarray, y: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, C: float, penalty: str,
                seed: int) -> float:
    from sklearn.metrics import roc_auc_score

    model = _model(C, penalty, seed).fit(X[fit_idx], y[fit_idx])
    return float(roc_auc_score(y[val_idx], model.predict_proba(X[val_idx])[:, 1]))


def fit_probe(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, groups: Sequence[str],
              Cs: Sequence[float], *, penalty: str = "l1", folds: int = 3, seed: int = 0, n_jobs: int = 1) -> ProbeFit:
    """Choose C by grouped CV AUROC on the train rows with the one-standard-error rule (the smallest,
    sparsest C whose CV AUROC is within one standard error of the best), refit on all train rows,
    score the test rows. X: (n_questions, n_features); y: 1 = hallucinated; train/test: row indices.
    The (C, fold) fits run in `n_jobs` processes."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedGroupKFold

    Xtr, ytr, gtr = X[train], y[train], np.asarray(groups)[train]
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(cv.split(Xtr, ytr, gtr))
    jobs = [delayed(_fold_auroc)(Xtr, ytr, f, v, C, penalty, seed) for C in Cs for f, v in splits]
    out = Parallel(n_jobs=n_jobs)(jobs) if n_jobs > 1 else [j[0](*j[1], **j[2]) for j in jobs]
    aucs = np.array(out).reshape(len(Cs), len(splits))
    sweep = [{"C": float(C), "cv_auroc": float(a.mean()), "cv_auroc_sd": float(a.std())}
             for C, a in zip(Cs, aucs, strict=True)]
    top = max(sweep, key=lambda s: s["cv_auroc"])
    threshold = top["cv_auroc"] - top["cv_auroc_sd"] / np.sqrt(len(splits))
    best = min((s for s in sweep if s["cv_auroc"] >= threshold), key=lambda s: s["C"])
    model = _model(best["C"], penalty, seed).fit(Xtr, ytr)
    return ProbeFit(C=best["C"], coef=model[-1].coef_.ravel().copy(), test_scores=model.predict_proba(X[test])[:, 1],
                    sweep=sweep)


def selected_neurons(coef: np.ndarray, d_ffn: int) -> list[dict[str, float]]:
    """Non-zero probe weights as (layer, neuron, weight), largest |weight| first."""
    idx = np.flatnonzero(coef)
    order = idx[np.argsort(-np.abs(coef[idx]), kind="stable")]
    return [{"layer": int(i // d_ffn), "neuron": int(i % d_ffn), "weight": float(coef[i])} for i in order]


def layer_counts(neurons: list[dict[str, float]], n_layers: int) -> list[int]:
    counts = [0] * n_layers
    for n in neurons:
        counts[int(n["layer"])] += 1
    return counts


def random_neurons(counts_per_layer: Sequence[int], d_ffn: int, rng: np.random.Generator,
                   matched_layers: bool = True) -> np.ndarray:
    """Flat indices of a random neuron set: per layer as many as `counts_per_layer` (matched), or the
    same total drawn from all layers."""
    if not matched_layers:
        total = int(sum(counts_per_layer))
        return np.sort(rng.choice(len(counts_per_layer) * d_ffn, size=total, replace=False))
    picks = [layer * d_ffn + rng.choice(d_ffn, size=c, replace=False) for layer, c in enumerate(counts_per_layer) if c]
    return np.sort(np.concatenate(picks)) if picks else np.array([], dtype=int)


def activity_bins(activity: np.ndarray, d_ffn: int, bins: int) -> np.ndarray:
    """Each neuron's within-layer quantile bin (0..bins-1) of its mean activity: (n_layers * d_ffn,)."""
    per_layer = activity.reshape(-1, d_ffn)
    ranks = per_layer.argsort(axis=1).argsort(axis=1)  # 0..d_ffn-1 within each layer
    return (ranks * bins // d_ffn).ravel()


def matched_random_set(selected: np.ndarray, bins: np.ndarray, d_ffn: int, rng: np.random.Generator) -> np.ndarray:
    """For each selected neuron, a random other neuron of the same layer and the same activity bin
    (drawn without replacement, never a selected one): flat indices, same size as `selected`."""
    taken = set(selected.tolist())
    out = []
    for i in selected.tolist():
        layer, b = i // d_ffn, bins[i]
        pool = layer * d_ffn + np.flatnonzero(bins[layer * d_ffn:(layer + 1) * d_ffn] == b)
        pool = np.array([j for j in pool.tolist() if j not in taken])
        j = int(rng.choice(pool))
        taken.add(j)
        out.append(j)
    return np.array(out, dtype=int)


def univariate_ranking(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Features ordered by how well each alone separates the classes on these rows (|AUROC - 0.5|,
    from the Mann-Whitney statistic), best first."""
    from scipy.stats import rankdata

    ranks = rankdata(X, axis=0)  # (n, d), ties averaged
    pos = y.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    auc = (ranks[pos].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.argsort(-np.abs(auc - 0.5), kind="stable")
