"""Step 6, the control that tests the neurons, not the selection: random neuron sets matched to
the L1 probe's, neuron for neuron, on layer and on activity (the same within-layer decile of mean
CETT on the training questions), n_sets of them per split. Each gets the probe's treatment (an L2
probe, C chosen by grouped CV on train over a wider grid) and its mean held-out AUROC over the
splits. The control statistic is the probe's rank among them: p = (1 + #{sets >= probe}) /
(1 + n_sets), an exact permutation-style p-value for "no better than matched random neurons".
The paired gain of the probe over the sets' mean carries a split-then-item interval.

Balance (what the engine checks against the claim's matched_on): per split, the standardized mean
difference between the probe's neurons and the random sets' neurons in layer and in activity
(mean CETT on the training questions), the largest absolute value over the splits reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig, ProbeConfig, SplitConfig
from pipeline.hneurons.config import RandomProbeConfig as Config
from pipeline.hneurons.probe import Data
from pipeline.hneurons.probing import activity_bins, fit_probe, matched_random_set


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"activations": ("pipeline.hneurons.activations", cfg.upstream(ActivationsConfig)),
            "split": ("pipeline.hneurons.split", cfg.upstream(SplitConfig)),
            "probe": ("pipeline.hneurons.probe", cfg.upstream(ProbeConfig))}


def set_scores(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, groups: np.ndarray,
                Cs: tuple[float, ...], folds: int, seed: int) -> list[float]:
    fit = fit_probe(X, y, train, test, groups, Cs, penalty="l2", folds=folds, seed=seed, n_jobs=1)
    return [round(float(s), 6) for s in fit.test_scores]


def smd(chosen: np.ndarray, drawn: np.ndarray) -> float:
    """Standardized mean difference of a covariate, drawn minus chosen (0 when both are constant)."""
    chosen, drawn = np.asarray(chosen, dtype=np.float64), np.asarray(drawn, dtype=np.float64)
    spread = float(np.sqrt((chosen.var(ddof=1) + drawn.var(ddof=1)) / 2)) if len(chosen) > 1 else 0.0
    diff = float(drawn.mean() - chosen.mean())
    return 0.0 if diff == 0 else (diff / spread if spread > 0 else float("inf"))


def run(config: dict[str, Any], ctx: Any) -> Result:
    from joblib import Parallel, delayed

    cfg = Config(**config)
    if cfg.selection != "l1" or cfg.shuffle_labels:
        raise ValueError("the matched random-set control is defined for the L1 probe on true labels")
    data = Data(ctx, cfg.variant)
    d_ffn = data.meta["d_ffn"]
    probe_splits = {s["seed"]: s for s in ctx.upstream("probe").result.values["splits"]}
    ckpt = ctx.checkpoint("splits")
    records = []
    for seed, train, test in ctx.progress(data.splits, total=len(data.splits), desc="matched random sets"):
        if seed not in ckpt:
            chosen = np.array([n["layer"] * d_ffn + n["neuron"] for n in probe_splits[seed]["neurons"]])
            if not len(chosen):
                raise ValueError(f"the probe kept no neuron on split {seed}: there is no set to match")
            activity = data.X[train].mean(axis=0)  # mean CETT on the training questions
            bins = activity_bins(activity, d_ffn, cfg.activity_bins)
            rng = np.random.default_rng([cfg.seed, seed, 11])
            sets = [matched_random_set(chosen, bins, d_ffn, rng) for _ in range(cfg.n_sets)]
            scores = Parallel(n_jobs=cfg.n_jobs)(
                delayed(set_scores)(data.X[:, idx], data.y, train, test, data.groups, cfg.l2_Cs, cfg.cv_folds,
                                     cfg.seed) for idx in sets)
            drawn = np.concatenate(sets)
            ckpt[seed] = {"seed": seed, "scores": scores, "activity_probe": float(activity[chosen].mean()),
                          "activity_random": float(np.mean([activity[idx].mean() for idx in sets])),
                          "smd_activity": smd(activity[chosen], activity[drawn]),
                          "smd_layer": smd((chosen // d_ffn).astype(float), (drawn // d_ffn).astype(float))}
        records.append(ckpt[seed])
    y = [np.array(probe_splits[r["seed"]]["y"]).astype(bool) for r in records]
    probe_scores = [np.array(probe_splits[r["seed"]]["scores"]) for r in records]
    S = [np.array(r["scores"]).T for r in records]  # per split: (n_test, n_sets)
    set_auroc = np.array([[stats._auc_1d(y[k], S[k][:, j]) for j in range(cfg.n_sets)] for k in range(len(S))])
    per_set = set_auroc.mean(axis=0)  # each set's mean AUROC over the splits
    probe_auroc = float(np.mean([stats._auc_1d(y[k], probe_scores[k]) for k in range(len(S))]))
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "test questions"}
    mean_auc = lambda d: float(np.mean([stats._auc_1d(d["y"], d["s"][:, j]) for j in range(d["s"].shape[1])]))  # noqa: E731
    split_data = [{"y": y[k], "s": S[k], "p": probe_scores[k]} for k in range(len(S))]
    return Result(
        estimates={
            "auroc": stats.hierarchical(split_data, mean_auc, n_resamples=400, **kw),
            "auroc_gain": stats.hierarchical(split_data, lambda d: stats._auc_1d(d["y"], d["p"]) - mean_auc(d),
                                             n_resamples=400, **kw),
        },
        values={"n_sets": cfg.n_sets, "probe_auroc": probe_auroc, "set_auroc": per_set.round(4).tolist(),
                "rank_p": float((1 + (per_set >= probe_auroc).sum()) / (1 + cfg.n_sets)),
                "set_auroc_max": float(per_set.max()), "set_auroc_median": float(np.median(per_set)),
                "n_sets_at_or_above": int((per_set >= probe_auroc).sum()),
                "activity_probe": float(np.mean([r["activity_probe"] for r in records])),
                "activity_random": float(np.mean([r["activity_random"] for r in records])),
                "activity_bins": cfg.activity_bins, "sided": "one",
                "balance": {"layer": max(abs(r["smd_layer"]) for r in records),
                            "activity": max(abs(r["smd_activity"]) for r in records)},
                "balance_per_split": [{"seed": r["seed"], "layer": r["smd_layer"], "activity": r["smd_activity"]}
                                      for r in records]},
    )
