"""The control for a concept's top feature: what a search over every feature finds when the labels
carry no signal. The concept's labels are permuted n_shuffles times; each time every feature's
Spearman with the permuted labels is computed (one matrix product over all permutations) and the
best one kept. The observed best Spearman's rank among those maxima is the p-value of the whole
search (selection included): p = (1 + #{shuffles whose best >= observed}) / (1 + n_shuffles).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.saefeatures import scores
from pipeline.saefeatures.config import ExtractionConfig, ReconstructionConfig
from pipeline.saefeatures.config import ShuffledConfig as Config

CHUNK = 100  # permutations per matrix product


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"extraction": ("pipeline.saefeatures.extraction", cfg.upstream(ExtractionConfig)),
            "reconstruction": ("pipeline.saefeatures.reconstruction", cfg.upstream(ReconstructionConfig))}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.ranking import Features

    cfg = Config(**config)
    f = Features(ctx, cfg)
    R = scores.centered_ranks(f.X)
    observed = float(scores.spearman(f.X, f.y).max())
    rng = np.random.default_rng([cfg.seed, 17])
    maxima = []
    for start in range(0, cfg.n_shuffles, CHUNK):
        perms = np.stack([rng.permutation(f.y) for _ in range(min(CHUNK, cfg.n_shuffles - start))])
        maxima.append(scores.spearman_many(R, perms).max(axis=1))
    null = np.concatenate(maxima)
    at_least = int((null >= observed).sum())
    return Result(values={
        "concept": cfg.concept, "readout": cfg.readout, "n_shuffles": cfg.n_shuffles, "n_features": int(f.X.shape[1]),
        "observed_max": observed, "rank_p": float((1 + at_least) / (1 + cfg.n_shuffles)), "shuffles_at_least": at_least,
        "null_max_median": float(np.median(null)), "null_max_q95": float(np.quantile(null, 0.95)),
        "null_max_max": float(null.max()),
        "null_histogram": np.histogram(null, bins=20, range=(0, 1))[0].tolist()})
