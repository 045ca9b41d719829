"""A trivial baseline the concept rankings must clear: sentence length.

The hand-written sentences are longer, the more clearly they exhibit their concept, and a latent
read as the maximum over a sentence's fragments grows with the number of fragments whenever it is
active on many tokens. So a latent can track the label through length alone. Per concept:

  length_spearman_<c>   Spearman of the sentence's token count with the label
  heldout_partial_<c>   the held-out check of pipeline.saefeatures.ranking (best latent chosen on one
                        half of the sentences, scored on the other, both ways, averaged), with the
                        partial Spearman correlation given the token count in place of the Spearman
                        correlation, for both the choice and the score
  heldout_partial_min   the weakest concept's
  heldout_matched_<c>   the same held-out check on length-matched pairs: over pairs of sentences of the
                        same token count and different labels, the share in which the sentence with
                        the higher label has the higher activation (ties count half; chance 0.5), the
                        latent chosen on one half by that share and scored on the other, both ways,
                        averaged. Length cannot separate a pair of equal length, so no length model
                        (linear or not) is needed
  heldout_matched_min   the weakest concept's

Intervals resample sentences within each label (each concept on its own sentences).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import Field

from claims import Estimate, Result
from pipeline import stats
from pipeline.saefeatures import scores
from pipeline.saefeatures.config import ExtractionConfig

CONCEPTS = ("dishonesty", "aggression", "bravery", "kindness")


class Config(ExtractionConfig):
    readout: str = Field("max", description="As in pipeline.saefeatures.ranking.")
    level: float = Field(0.95, gt=0, lt=1)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"extraction": ("pipeline.saefeatures.extraction", Config(**config).upstream(ExtractionConfig))}


def partial_spearman(X: np.ndarray, y: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(F,) Spearman of each column with y, given length (ranks correlated after removing length)."""
    rxy, rxl = scores.spearman(X, y), scores.spearman(X, length)
    ryl = float(scores.spearman(length[:, None], y)[0])
    denom = np.sqrt(np.clip((1 - rxl ** 2) * (1 - ryl ** 2), 0, None))
    return np.divide(rxy - rxl * ryl, denom, out=np.zeros_like(rxy), where=denom > 1e-9)


def matched_concordance(X: np.ndarray, y: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(F,) per column: over pairs of sentences of equal token count and different labels, the share in
    which the higher-labelled sentence has the higher activation (ties count half); NaN without pairs."""
    i, j = np.nonzero((length[:, None] == length[None, :]) & (y[:, None] > y[None, :]))
    if len(i) == 0:
        return np.full(X.shape[1], np.nan)
    diff = X[i] - X[j]  # (pairs, F)
    return ((diff > 0).sum(axis=0) + 0.5 * (diff == 0).sum(axis=0)) / len(i)


def matched_pairs(y: np.ndarray, length: np.ndarray) -> int:
    return int(((length[:, None] == length[None, :]) & (y[:, None] > y[None, :])).sum())


def heldout_matched(X: np.ndarray, y: np.ndarray, length: np.ndarray, half: np.ndarray, idx: np.ndarray,
                    chosen: dict[int, int]) -> float:
    vals = []
    for h in (0, 1):
        rows = idx[half[idx] != h]
        vals.append(matched_concordance(X[rows][:, [chosen[h]]], y[rows], length[rows])[0])
    return float(np.nanmean(vals))


def heldout_partial(X: np.ndarray, y: np.ndarray, length: np.ndarray, half: np.ndarray, idx: np.ndarray,
                    chosen: dict[int, int]) -> float:
    vals = []
    for h in (0, 1):
        rows = idx[half[idx] != h]
        vals.append(partial_spearman(X[rows][:, [chosen[h]]], y[rows], length[rows])[0])
    return float(np.mean(vals))


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.saefeatures.ranking import Features, set_halves

    cfg = Config(**config)
    rng = np.random.default_rng(cfg.seed)
    data = {}
    for concept in [c for c in CONCEPTS if c in cfg.concepts]:
        f = Features(ctx, SimpleNamespace(concept=concept, readout=cfg.readout))
        length = np.array([len(s["pieces"]) for s in f.sentences], dtype=float)
        half = set_halves(f.sentences, f.y, cfg.seed)
        chosen = {h: int(np.argmax(partial_spearman(f.X[half == h], f.y[half == h], length[half == h])))
                  for h in (0, 1)}
        matched = {h: int(np.argmax(np.nan_to_num(matched_concordance(f.X[half == h], f.y[half == h],
                                                                      length[half == h]), nan=-1.0)))
                   for h in (0, 1)}
        data[concept] = (f, length, half, chosen, matched)
    estimates: dict[str, Estimate] = {}
    values: dict[str, Any] = {"concepts": list(data), "readout": cfg.readout, "heldout_partial_features": {},
                              "heldout_matched_features": {}}
    draws = {c: [] for c in data}
    for concept, (f, length, half, chosen, matched) in data.items():
        groups = [np.flatnonzero(f.y == label) for label in np.unique(f.y)]
        for _ in range(stats.N_RESAMPLES):
            idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
            draws[concept].append((heldout_partial(f.X, f.y, length, half, idx, chosen),
                                   float(scores.spearman(length[idx][:, None], f.y[idx])[0]),
                                   heldout_matched(f.X, f.y, length, half, idx, matched)))
        everyone = np.arange(len(f.y))
        point = (heldout_partial(f.X, f.y, length, half, everyone, chosen),
                 float(scores.spearman(length[:, None], f.y)[0]),
                 heldout_matched(f.X, f.y, length, half, everyone, matched))
        for k, name in enumerate(("heldout_partial", "length_spearman", "heldout_matched")):
            _put(estimates, values, f"{name}_{concept}",
                 _estimate(point[k], [d[k] for d in draws[concept]], len(f.y), cfg.level))
        values["heldout_partial_features"][concept] = [f"L{f.layers[f.locate(chosen[h])[0]]}/{f.locate(chosen[h])[1]}"
                                                       for h in (0, 1)]
        values["heldout_matched_features"][concept] = [
            f"L{f.layers[f.locate(matched[h])[0]]}/{f.locate(matched[h])[1]}" for h in (0, 1)]
        values[f"matched_pairs_{concept}"] = [matched_pairs(f.y[half != h], length[half != h]) for h in (0, 1)]
        values[f"mean_tokens_by_label_{concept}"] = [float(length[f.y == label].mean()) for label in np.unique(f.y)]
    n_all = sum(len(d[0].y) for d in data.values())
    for k, name in ((0, "heldout_partial"), (2, "heldout_matched")):
        if any(f"{name}_{c}" not in estimates for c in data):
            values.setdefault("not_estimable", []).append(f"{name}_min")
            continue
        minimum = [min(draws[c][r][k] for c in data) for r in range(stats.N_RESAMPLES)]
        _put(estimates, values, f"{name}_min",
             _estimate(min(estimates[f"{name}_{c}"].value for c in data), minimum, n_all, cfg.level))
    return Result(estimates=estimates, values=values)


def _put(estimates: dict[str, Estimate], values: dict[str, Any], name: str, estimate: Estimate | None) -> None:
    """An estimate, or its name under not_estimable (no length-matched pairs, e.g. on the tiny profile)."""
    if estimate is None:
        values.setdefault("not_estimable", []).append(name)
    else:
        estimates[name] = estimate


def _estimate(value: float, draws: list[float], n: int, level: float) -> Estimate | None:
    if not np.isfinite(value) or not np.isfinite(draws).all():
        return None
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(value=value, ci=(min(float(low), value), max(float(high), value)), level=level, n=n,
                    method="bootstrap-label-stratified-percentile", unit="sentences")
