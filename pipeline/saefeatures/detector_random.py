"""The control of the SAE-feature detector: random latent sets matched to the SAE probe's, latent for
latent, on SAE (layer) and on mean activation over the training questions, n_sets per split, each
given an L2 probe with C chosen the same way. The control statistic is the SAE probe's rank among
them: p = (1 + #{sets >= probe}) / (1 + n_sets). (The design of pipeline.hneurons.probe_random, on
latents instead of neurons.)

Matching (`matched_latent_set`): the probe's latents of each SAE are taken from the most to the least
active; each gets a random latent of its SAE, drawn without replacement among the `match_pool`
latents nearest in mean activation to a target: its own activation plus what the set so far falls
short of the probe's latents of that SAE. The first rounds drew from the same activity decile
instead, and an SAE's activations are heavy-tailed: the top decile spans orders of magnitude and the
probe keeps its most active latents, so the drawn latents were markedly less active (mean 38 against
the probe's 56). Nearest neighbours alone still fall short at the top of each SAE, where no other
latent is as active as the probe's; carrying the shortfall lets the next draws make it up.

Balance (what the engine checks against the claim's matched_on): per split, the standardized mean
difference between the probe's latents and all the sets' latents in layer, mean activation and
firing rate (the share of training questions on which the latent is active, reported, not matched);
for each, the value of largest magnitude over the splits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.saefeatures.detector import by_split


def matched_latent_set(chosen: np.ndarray, activation: np.ndarray, width: int, rng: np.random.Generator,
                       pool: int) -> np.ndarray:
    """For each chosen latent (flat index, SAE = index // width) a random other latent of its SAE,
    never a chosen one nor one drawn before: among the `pool` nearest in activation to the chosen
    latent's own plus the SAE's running shortfall (chosen minus drawn so far), taken from the most
    active chosen latent down. Ties (dead latents) are broken at random. Same order as `chosen`."""
    out = np.empty(len(chosen), dtype=int)
    free = np.ones(len(activation), dtype=bool)
    free[chosen] = False
    for sae in np.unique(chosen // width):
        mine = np.flatnonzero(chosen // width == sae)
        shortfall = 0.0
        for m in mine[np.argsort(-activation[chosen[mine]], kind="stable")]:
            candidates = sae * width + rng.permutation(np.flatnonzero(free[sae * width:(sae + 1) * width]))
            if not len(candidates):
                raise ValueError(f"SAE {sae} has no latent left to match latent {chosen[m]}")
            target = activation[chosen[m]] + shortfall
            near = candidates[np.argsort(np.abs(activation[candidates] - target), kind="stable")[:pool]]
            out[m] = int(rng.choice(near))
            free[out[m]] = False
            shortfall += float(activation[chosen[m]] - activation[out[m]])
    return out


def balance(chosen: np.ndarray, sets: list[np.ndarray], covariates: dict[str, np.ndarray]) -> dict[str, float]:
    """Standardized mean difference (drawn minus chosen) of each covariate, over all the sets' latents."""
    from pipeline.hneurons.probe_random import smd

    drawn = np.concatenate(sets)
    return {name: smd(values[chosen], values[drawn]) for name, values in covariates.items()}


def latent_balance(chosen: np.ndarray, sets: list[np.ndarray], activation: np.ndarray, layers: Any, width: int,
                   **more: np.ndarray) -> dict[str, float]:
    """`balance` in layer (the SAE of each flat index) and mean activation, and any `more` covariates."""
    return balance(chosen, sets, {"layer": np.repeat(np.asarray(layers, float), width), "activation": activation,
                                  **more})


def set_aurocs(split: dict[str, np.ndarray]) -> np.ndarray:
    """Each set's AUROC on one split: `s` holds one column of test scores per set."""
    return np.array([stats._auc_1d(split["y"], split["s"][:, j]) for j in range(split["s"].shape[1])])


def mean_set_auroc(split: dict[str, np.ndarray]) -> float:
    return float(set_aurocs(split).mean())


def score_splits(rows: list[dict[str, Any]], n_sets: int) -> list[dict[str, np.ndarray]]:
    """Per split, from the control's rows: labels `y`, the SAE probe's scores `p` and the sets' `s`
    (n_test, n_sets)."""
    columns = [f"set_{j:03d}" for j in range(n_sets)]
    return [{"y": np.array([r["label"] == "hallucinated" for r in g]), "p": np.array([r["sae"] for r in g], float),
             "s": np.array([[r[c] for c in columns] for r in g], float)} for g in by_split(rows)]


def control_estimates(rows: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """The sets' mean AUROC with a split-then-item interval, from the per-item rows."""
    return {"auroc": stats.hierarchical(score_splits(rows, cfg.n_sets), mean_set_auroc, n_resamples=400,
                                        level=cfg.level, seed=cfg.seed, unit="test questions")}


def run_random(cfg: Any, ctx: Any) -> Result:
    from joblib import Parallel, delayed

    from pipeline.hneurons.probe_random import set_scores as fit_set_scores
    from pipeline.hneurons.split import group_of, labelled_rows

    up = ctx.upstream("sae_probe")
    X = up.arrays("features")["x"]
    widths, layers = up.result.values["widths"], up.result.values["layers"]
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
            activation = X[train].mean(axis=0)
            rng = np.random.default_rng([cfg.seed, seed, 13])
            sets = [matched_latent_set(chosen, activation, width, rng, cfg.match_pool) for _ in range(cfg.n_sets)]
            set_scores = Parallel(n_jobs=cfg.n_jobs)(
                delayed(fit_set_scores)(X[:, idx], y, train, test, groups, cfg.l2_Cs, cfg.cv_folds, cfg.seed)
                for idx in sets)
            ckpt[seed] = {"seed": seed, "scores": set_scores, "activity_probe": float(activation[chosen].mean()),
                          "activity_sets": [float(activation[idx].mean()) for idx in sets],
                          "balance": latent_balance(chosen, sets, activation, layers, width,
                                                    firing=(X[train] > 0).mean(axis=0))}
        records.append(ckpt[seed])
    scores = [{"split": r["seed"], "id": q, "label": "hallucinated" if probe[r["seed"]]["y"][i] else "faithful",
               "sae": probe[r["seed"]]["scores"][i], **{f"set_{j:03d}": s[i] for j, s in enumerate(r["scores"])}}
              for r in records for i, q in enumerate(probe[r["seed"]]["test_ids"])]
    splits = score_splits(scores, cfg.n_sets)
    split_auroc = np.array([set_aurocs(d) for d in splits])  # (splits, sets)
    ctx.save_items("scores", scores)
    ctx.save_items("sets", [{"split": r["seed"], "set": j, "auroc": float(split_auroc[k, j]),
                             "activation": r["activity_sets"][j]}
                            for k, r in enumerate(records) for j in range(cfg.n_sets)])
    per_set = split_auroc.mean(axis=0)  # each set's mean AUROC over the splits
    probe_auroc = float(np.mean([stats._auc_1d(d["y"], d["p"]) for d in splits]))
    return Result(
        estimates=control_estimates(scores, cfg),
        values={"n_sets": cfg.n_sets, "probe_auroc": probe_auroc, "set_auroc": per_set.round(4).tolist(),
                "rank_p": float((1 + (per_set >= probe_auroc).sum()) / (1 + cfg.n_sets)),
                "n_sets_at_or_above": int((per_set >= probe_auroc).sum()), "set_auroc_max": float(per_set.max()),
                "sided": "one", "match_pool": cfg.match_pool,
                "activity_probe": float(np.mean([r["activity_probe"] for r in records])),
                "activity_random": float(np.mean([np.mean(r["activity_sets"]) for r in records])),
                "balance": {name: max((r["balance"][name] for r in records), key=abs)
                            for name in ("layer", "activation", "firing")},
                "balance_per_split": [{"seed": r["seed"], **r["balance"]} for r in records]})
