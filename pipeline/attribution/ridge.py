"""Leave-one-group-out ridge for many targets at once: `estimates.grouped_predictions` (each group
held out once, alpha chosen inside each training fold by grouped cross-validation on mean squared
error), factored so that every SVD, which depends on the features and the splits only, is computed
once. A control that refits the same features to many shuffled targets then costs about one fit:
the fingerprint's 199 shuffles took 7 s each as separate fits."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class _Factor:
    """One split's ridge, ready for any target: the training rows' SVD (A = U diag(s) Vt, features
    standardised with the training rows' mean and std, constant ones dropped) and the new rows
    projected onto its right singular vectors."""

    U: np.ndarray
    s: np.ndarray
    BV: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, X_new: np.ndarray) -> _Factor:
        mu, sd = X.mean(axis=0), X.std(axis=0)
        keep = sd > 0
        A, B = (X[:, keep] - mu[keep]) / sd[keep], (X_new[:, keep] - mu[keep]) / sd[keep]
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        return cls(U, s, B @ Vt.T)

    def path(self, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Predictions for every alpha and every target column: (n_new, n_alphas, n_targets)."""
        C = self.U.T @ (Y - Y.mean(axis=0))  # (rank, m)
        shrink = self.s[None, :] / (self.s[None, :] ** 2 + alphas[:, None])  # (n_alphas, rank)
        return Y.mean(axis=0) + np.einsum("nr,ar,rm->nam", self.BV, shrink, C)

    def at(self, Y: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Predictions with each target column's own alpha: (n_new, n_targets)."""
        C = self.U.T @ (Y - Y.mean(axis=0))
        shrink = self.s[:, None] / (self.s[:, None] ** 2 + alphas[None, :])  # (rank, m)
        return Y.mean(axis=0) + self.BV @ (shrink * C)


class GroupedRidge:
    """The folds of `grouped_predictions` for features X and groups, factored once."""

    def __init__(self, X: np.ndarray, groups: np.ndarray, alphas: tuple[float, ...]):
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
        from threadpoolctl import threadpool_limits

        X, groups = np.asarray(X, dtype=float), np.asarray(groups)
        self.n = len(X)
        self.grid = np.asarray(alphas, dtype=float)
        self.folds: list[tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, _Factor]], _Factor]] = []
        with threadpool_limits(limits=int(os.environ.get("CLAIMS_TORCH_THREADS") or os.cpu_count() or 1)):
            for train, test in LeaveOneGroupOut().split(X, groups=groups):
                inner = min(5, len(np.unique(groups[train])))
                splits = []
                if inner >= 2 and len(self.grid) > 1:
                    for fit, held in GroupKFold(n_splits=inner).split(X[train], groups=groups[train]):
                        splits.append((train[fit], train[held], _Factor.of(X[train][fit], X[train][held])))
                self.folds.append((train, test, splits, _Factor.of(X[train], X[test])))

    def predict(self, Y: np.ndarray) -> np.ndarray:
        """Out-of-fold predictions for every target column of Y (n, m): column j is what
        grouped_predictions(X, Y[:, j], groups, alphas) returns, up to rounding."""
        Y = np.asarray(Y, dtype=float)
        if Y.ndim != 2 or len(Y) != self.n:
            raise ValueError(f"targets must be ({self.n}, m), got {Y.shape}")
        out = np.empty_like(Y)
        for train, test, splits, full in self.folds:
            best = np.full(Y.shape[1], self.grid[0])
            if splits:
                errors = np.zeros((len(self.grid), Y.shape[1]))
                for fit, held, factor in splits:
                    errors += ((factor.path(Y[fit], self.grid) - Y[held][:, None, :]) ** 2).sum(axis=0)
                best = self.grid[np.argmin(errors, axis=0)]
            out[test] = full.at(Y[train], best)
        return out
