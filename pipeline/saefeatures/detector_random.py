"""The control of the SAE-feature detector: random latent sets matched to the SAE probe's, latent for
latent, on SAE (layer) and on activity (the same decile of mean activation over the training
questions, within that SAE), n_sets per split, each given an L2 probe with C chosen the same way.
The control statistic is the SAE probe's rank among them: p = (1 + #{sets >= probe}) / (1 + n_sets).
(The same design as pipeline.hneurons.probe_random, on latents instead of neurons.)"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats


def run_random(cfg: Any, ctx: Any) -> Result:
    from joblib import Parallel, delayed

    from pipeline.hneurons.probe_random import set_scores as fit_set_scores
    from pipeline.hneurons.probing import activity_bins, matched_random_set
    from pipeline.hneurons.split import group_of, labelled_rows

    up = ctx.upstream("sae_probe")
    X = up.arrays("features")["x"]
    widths = up.result.values["widths"]
    if len(set(widths)) != 1:
        raise ValueError(f"matched random latents need SAEs of one width, got {widths}")
    width = widths[0]
    rows = labelled_rows(ctx.upstream("labels").json("labels"))
    y = np.array([int(r["label"] == "hallucinated") for r in rows])
    groups = np.array([group_of(r) for r in rows])
    row = {r["id"]: i for i, r in enumerate(rows)}
    probe = {s["seed"]: s for s in up.result.values["splits"]}
    ckpt = ctx.checkpoint("splits")
    records = []
    for split in ctx.progress(ctx.upstream("split").result.values["splits"], desc="matched random latents"):
        seed = split["seed"]
        if seed not in ckpt:
            train, test = np.array([row[q] for q in split["train"]]), np.array([row[q] for q in split["test"]])
            chosen = np.array([f["flat"] for f in probe[seed]["latents"]])
            if not len(chosen):
                raise ValueError(f"the SAE probe kept no latent on split {seed}: there is no set to match")
            activity = X[train].mean(axis=0)
            bins = activity_bins(activity, width, cfg.activity_bins)
            rng = np.random.default_rng([cfg.seed, seed, 13])
            sets = [matched_random_set(chosen, bins, width, rng) for _ in range(cfg.n_sets)]
            set_scores = Parallel(n_jobs=cfg.n_jobs)(
                delayed(fit_set_scores)(X[:, idx], y, train, test, groups, cfg.l2_Cs, cfg.cv_folds, cfg.seed)
                for idx in sets)
            ckpt[seed] = {"seed": seed, "scores": set_scores, "activity_probe": float(activity[chosen].mean()),
                          "activity_random": float(np.mean([activity[idx].mean() for idx in sets]))}
        records.append(ckpt[seed])
    ys = [np.array(probe[r["seed"]]["y"]).astype(bool) for r in records]
    S = [np.array(r["scores"]).T for r in records]  # per split: (n_test, n_sets)
    per_set = np.array([[stats._auc_1d(ys[k], S[k][:, j]) for j in range(cfg.n_sets)] for k in range(len(S))]).mean(0)
    probe_auroc = float(np.mean([stats._auc_1d(ys[k], np.array(probe[r["seed"]]["scores"]))
                                 for k, r in enumerate(records)]))
    mean_auc = lambda d: float(np.mean([stats._auc_1d(d["y"], d["s"][:, j]) for j in range(d["s"].shape[1])]))  # noqa: E731
    data = [{"y": ys[k], "s": S[k]} for k in range(len(S))]
    return Result(
        estimates={"auroc": stats.hierarchical(data, mean_auc, n_resamples=400, level=cfg.level, seed=cfg.seed,
                                               unit="test questions")},
        values={"n_sets": cfg.n_sets, "probe_auroc": probe_auroc, "set_auroc": per_set.round(4).tolist(),
                "rank_p": float((1 + (per_set >= probe_auroc).sum()) / (1 + cfg.n_sets)),
                "n_sets_at_or_above": int((per_set >= probe_auroc).sum()), "set_auroc_max": float(per_set.max()),
                "activity_probe": float(np.mean([r["activity_probe"] for r in records])),
                "activity_random": float(np.mean([r["activity_random"] for r in records]))})
