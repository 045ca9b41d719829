"""Directions for steering, fit on the detection study's training questions of its first split
(answer tokens of the kept sampled answer):

DiffMean  per layer, the mean residual of hallucinated minus faithful answers, scaled by the std
          of the training projections onto it (strength is in those units); which layer steers is
          chosen later, on the steering selection items (direction_sweep)
ITI       per attention head, the mass-mean direction of its output; heads ranked by grouped-CV
          accuracy of a logistic probe on train; the top `n_heads` are shifted, each by its
          direction times the std of its training projections
Detection AUROC of each (per DiffMean layer, and of the ITI heads together) on the held-out
detection questions, with its interval, for the detection-vs-steering comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import SampleConfig, Step
from pipeline.steering.config import detection, detection_split


class Config(Step):
    profile: str = "embedded"
    seed: int = 42
    n_heads: int = Field(4, ge=1, description="Heads shifted by ITI (the 270M model has 72).")
    batch_size: int = Field(16, ge=1)
    level: float = Field(0.95, gt=0, lt=1)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"labels": ("pipeline.hneurons.sample", detection(cfg.profile, cfg.seed).upstream(SampleConfig)),
            "split": ("pipeline.hneurons.split", detection_split(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def head_cv_accuracy(X: np.ndarray, y: np.ndarray, groups: list[str], seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(model, X, y, cv=cv, groups=groups, scoring="accuracy").mean())


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.hneurons.split import group_of
    from pipeline.models import load
    from pipeline.steering.capture import answer_activations

    cfg = Config(**config)
    rows = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    split = ctx.upstream("split").result.values["splits"][0]
    ids = split["train"] + split["test"]
    lm = load(cfg.profile)
    acts = answer_activations(lm, rows, ids, cfg.batch_size, ctx.checkpoint("batches"), ctx.progress)
    resid = acts["resid"]  # (N, L, D)
    heads = acts["heads"].reshape(len(ids), lm.n_layers, lm.n_heads, lm.head_dim)
    y = np.array([int(rows[q]["label"] == "hallucinated") for q in ids])
    train = np.arange(len(ids)) < len(split["train"])
    groups = [group_of(rows[q]) for q in ids]
    ytr, yte = y[train], y[~train]

    # DiffMean: one direction per layer, in units of the training projections' std
    d = resid[train][ytr == 1].mean(0) - resid[train][ytr == 0].mean(0)  # (L, D)
    units = d / np.linalg.norm(d, axis=-1, keepdims=True)
    proj = np.einsum("nld,ld->nl", resid, units)
    sigma = proj[train].std(axis=0)  # (L,)
    layer_auroc = [stats.auroc(yte, proj[~train, l_], level=cfg.level, seed=cfg.seed, unit="test questions")
                   for l_ in range(lm.n_layers)]

    # ITI: mass-mean direction per head, heads ranked by grouped-CV probe accuracy on train
    theta = heads[train][ytr == 1].mean(0) - heads[train][ytr == 0].mean(0)  # (L, H, hd)
    theta_units = theta / np.linalg.norm(theta, axis=-1, keepdims=True)
    gtr = [g for g, t in zip(groups, train, strict=True) if t]
    ranking = sorted(((head_cv_accuracy(heads[train][:, l_, h], ytr, gtr, cfg.seed), l_, h)
                      for l_ in range(lm.n_layers) for h in range(lm.n_heads)), reverse=True)
    chosen = ranking[: cfg.n_heads]
    head_proj = np.stack([heads[:, l_, h] @ theta_units[l_, h] for _, l_, h in chosen], axis=1)  # (N, K)
    head_sigma = head_proj[train].std(0)
    iti_score = (head_proj / head_sigma).sum(1)

    ctx.save_arrays("directions", diffmean=units * sigma[:, None],
                    iti=np.stack([theta_units[l_, h] * s for (_, l_, h), s in zip(chosen, head_sigma, strict=True)]))
    return Result(
        estimates={"iti_auroc": stats.auroc(yte, iti_score[~train], level=cfg.level, seed=cfg.seed,
                                            unit="test questions")},
        values={"diffmean_sigma": sigma.tolist(), "diffmean_norm": (np.linalg.norm(units * sigma[:, None], axis=-1)).tolist(),
                "diffmean_layer_auroc": [e.model_dump(mode="json") for e in layer_auroc],
                "iti_heads": [{"layer": l_, "head": h, "cv_accuracy": a} for a, l_, h in chosen],
                "iti_head_accuracy": [{"layer": l_, "head": h, "cv_accuracy": a} for a, l_, h in ranking],
                "n_train": int(train.sum()), "n_test": int((~train).sum())},
    )
