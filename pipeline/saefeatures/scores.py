"""How well each feature tracks a 0-3 concept label, for every feature at once (columns of X).

  spearman      rank correlation of the feature's activation with the label (ties averaged;
                a feature that never varies scores 0)
  auroc         P(activation on a label-3 sentence > on a label-0 sentence), ties count half
  label_means   the feature's mean activation at each label 0-3
  mono_steps    how many of the three steps 0->1, 1->2, 2->3 raise that mean (3: monotone)
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

LABELS = (0, 1, 2, 3)


def centered_ranks(X: np.ndarray) -> np.ndarray:
    """Column ranks (ties averaged), centred and scaled to unit norm; constant columns are 0."""
    R = rankdata(X, axis=0)
    R = R - R.mean(axis=0)
    norm = np.linalg.norm(R, axis=0)
    return np.divide(R, norm, out=np.zeros_like(R), where=norm > 0)


def spearman(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(F,) Spearman correlation of each column of X (n, F) with y (n,)."""
    return centered_ranks(np.asarray(y, float)[:, None])[:, 0] @ centered_ranks(np.asarray(X, float))


def spearman_many(R: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(P, F) Spearman of every feature with each of P label vectors (P, n), given R =
    centered_ranks(X): one matrix product for all permutations of a shuffled-label control."""
    return centered_ranks(np.asarray(labels, float).T).T @ R


def auroc(X: np.ndarray, y: np.ndarray, pos: int = 3, neg: int = 0) -> np.ndarray:
    """(F,) AUROC of each column separating label `pos` from label `neg` (Mann-Whitney)."""
    keep = (y == pos) | (y == neg)
    ranks = rankdata(np.asarray(X, float)[keep], axis=0)
    is_pos = (y[keep] == pos)
    n1, n0 = is_pos.sum(), (~is_pos).sum()
    return (ranks[is_pos].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def label_means(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(4, F) mean activation per label."""
    return np.stack([X[y == label].mean(axis=0) for label in LABELS])


def mono_steps(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(F,) number of label steps (of three) on which the mean activation rises."""
    return (np.diff(label_means(X, y), axis=0) > 0).sum(axis=0)
