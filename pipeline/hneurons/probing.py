"""Sparse logistic probes on neuron features (scikit-learn), with C chosen by subject-grouped CV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ProbeFit:
    C: float
    coef: np.ndarray  # (n_features,) in standardized units
    test_scores: np.ndarray  # P(hallucinated) on the test rows
    sweep: list[dict[str, float]]  # per C: cv_auroc (mean, sd over folds), n_kept on all train


def _model(C: float, penalty: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    solver = "liblinear"
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, l1_ratio=1.0 if penalty == "l1" else 0.0,
                                                              solver=solver, max_iter=2000, random_state=seed))


def fit_probe(X: np.ndarray, y: np.ndarray, is_test: np.ndarray, groups: Sequence[str], Cs: Sequence[float],
              *, penalty: str = "l1", folds: int = 5, seed: int = 0) -> ProbeFit:
    """Choose C by grouped CV AUROC on the train rows with the one-standard-error rule (the smallest,
    sparsest C whose CV AUROC is within one standard error of the best), refit on all train rows,
    score the test rows. X: (n_questions, n_features); y: 1 = hallucinated."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    train = ~is_test
    Xtr, ytr, gtr = X[train], y[train], np.asarray(groups)[train]
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(cv.split(Xtr, ytr, gtr))
    sweep = []
    for C in Cs:
        aucs = []
        for fit_idx, val_idx in splits:
            model = _model(C, penalty, seed).fit(Xtr[fit_idx], ytr[fit_idx])
            aucs.append(roc_auc_score(ytr[val_idx], model.predict_proba(Xtr[val_idx])[:, 1]))
        full = _model(C, penalty, seed).fit(Xtr, ytr)
        n_kept = int(np.count_nonzero(full[-1].coef_))
        sweep.append({"C": float(C), "cv_auroc": float(np.mean(aucs)), "cv_auroc_sd": float(np.std(aucs)),
                      "n_kept": n_kept})
    top = max(sweep, key=lambda s: s["cv_auroc"])
    threshold = top["cv_auroc"] - top["cv_auroc_sd"] / np.sqrt(len(splits))
    best = min((s for s in sweep if s["cv_auroc"] >= threshold), key=lambda s: s["C"])
    model = _model(best["C"], penalty, seed).fit(Xtr, ytr)
    return ProbeFit(C=best["C"], coef=model[-1].coef_.ravel().copy(),
                    test_scores=model.predict_proba(X[is_test])[:, 1], sweep=sweep)


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
