"""The control for a concept's held-out latent: what the same held-out search finds when the labels
carry no signal. The labels are permuted n_shuffles times **within each length-matched set** (v2
data: a set's four sentences have one token count, so every permuted label keeps exactly the token
counts of the real one; v1 data has no sets and is permuted within each half); each time the latent
with the best Spearman on one half is chosen and scored on the other, both ways, averaged, exactly
as pipeline.saefeatures.ranking computes `heldout_spearman` (one matrix product over a chunk of
permutations). The observed held-out Spearman's rank among those is the p-value of the whole
search, selection included: p = (1 + #{shuffles >= observed}) / (1 + n_shuffles).

Balance on length: for each permutation, the largest |standardized mean difference| in token count
between the sentences given one label and the rest, averaged over permutations (0 on v2 data).
The per-draw null values are committed as per-item rows (`draws`).
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


def permutations(y: np.ndarray, strata: list[Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, len(y)) label vectors, each y permuted within every stratum."""
    groups = [np.flatnonzero(np.array([s == k for s in strata])) for k in dict.fromkeys(strata)]
    out = np.repeat(y[None, :], n, axis=0)
    for g in groups:
        out[:, g] = np.stack([y[g][rng.permutation(len(g))] for _ in range(n)])
    return out


def heldout_many(X: np.ndarray, half: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P,) held-out Spearman of the search for each of P label vectors (P, n), and (P, 2) the latent
    chosen on each half."""
    R = {h: scores.centered_ranks(X[half == h]) for h in (0, 1)}
    rho = {h: scores.spearman_many(R[h], labels[:, half == h]) for h in (0, 1)}  # (P, F) per half
    chosen = np.stack([rho[h].argmax(axis=1) for h in (0, 1)], axis=1)
    rows = np.arange(labels.shape[0])
    held = (rho[1][rows, chosen[:, 0]] + rho[0][rows, chosen[:, 1]]) / 2
    return held, chosen


def length_smd(labels: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(P,) per label vector: the largest |SMD| of token count between one label's sentences and the rest."""
    out = np.zeros(labels.shape[0])
    for label in scores.LABELS:
        inside = labels == label
        for p in range(labels.shape[0]):
            a, b = length[inside[p]], length[~inside[p]]
            if len(a) < 2 or len(b) < 2:
                continue
            pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
            smd = 0.0 if pooled == 0 else abs(a.mean() - b.mean()) / pooled
            out[p] = max(out[p], smd)
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.ranking import Features, set_halves

    cfg = Config(**config)
    f = Features(ctx, cfg)
    half = set_halves(f.sentences, f.y, cfg.seed)
    sets = [s.get("set") for s in f.sentences]
    strata = [(int(half[i]), s) for i, s in enumerate(sets)] if None not in sets else [int(h) for h in half]
    length = np.array([len(s["pieces"]) for s in f.sentences], dtype=float)
    observed_arr, observed_chosen = heldout_many(f.X, half, f.y[None, :])
    observed = float(observed_arr[0])
    rng = np.random.default_rng([cfg.seed, 17])
    null, chosen, smd = [], [], []
    for start in ctx.progress(range(0, cfg.n_shuffles, CHUNK), total=-(-cfg.n_shuffles // CHUNK),
                              desc=f"{cfg.concept}: label shuffles within sets"):
        perms = permutations(f.y, strata, min(CHUNK, cfg.n_shuffles - start), rng)
        held, picked = heldout_many(f.X, half, perms)
        null.append(held)
        chosen.append(picked)
        smd.append(length_smd(perms, length))
    null, chosen, smd = np.concatenate(null), np.concatenate(chosen), np.concatenate(smd)
    at_least = int((null >= observed).sum())
    ctx.save_items("draws", [{"draw": i, "heldout_spearman": float(v), "chosen_half0": int(c[0]),
                              "chosen_half1": int(c[1]), "length_smd": float(s)}
                             for i, (v, c, s) in enumerate(zip(null, chosen, smd, strict=True))])
    return Result(values={
        "concept": cfg.concept, "readout": cfg.readout, "n_shuffles": cfg.n_shuffles, "n_features": int(f.X.shape[1]),
        "permuted_within": "length-matched sets within each half" if None not in sets else "each half",
        "observed_heldout": observed, "observed_chosen": [int(c) for c in observed_chosen[0]],
        "rank_p": float((1 + at_least) / (1 + cfg.n_shuffles)), "shuffles_at_least": at_least,
        "null_median": float(np.median(null)), "null_q95": float(np.quantile(null, 0.95)),
        "null_max": float(null.max()), "null_draws": [float(v) for v in null],
        "balance": {"length": float(smd.mean())}, "length_balance": float(smd.mean()), "length_smd_max": float(smd.max()),
        "null_histogram": np.histogram(null, bins=20, range=(-1, 1))[0].tolist()})
