"""Step 5: an L1 logistic probe on CETT of all FFN neurons separates hallucinated from faithful
answers. C is swept and chosen by subject-grouped CV on train; the held-out test set gives
accuracy (Wilson interval) and AUROC (stratified bootstrap). The same procedure on the all-token
variant of CETT is reported beside it, so that the answer-token headline is read against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig
from pipeline.hneurons.config import ProbeConfig as Config
from pipeline.hneurons.probing import fit_probe, layer_counts, selected_neurons


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"activations": ("pipeline.hneurons.activations", Config(**config).upstream(ActivationsConfig))}


def load_features(ctx: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    up = ctx.upstream("activations")
    arrays = up.arrays("cett")
    return arrays, up.result.values


def evaluate(fit_scores: np.ndarray, y_test: np.ndarray, level: float, seed: int) -> dict[str, Any]:
    predictions = fit_scores >= 0.5
    return {
        "accuracy": stats.proportion(int((predictions == y_test.astype(bool)).sum()), len(y_test), level,
                                     unit="test questions"),
        "auroc": stats.auroc(y_test, fit_scores, level=level, seed=seed, unit="test questions"),
    }


def family_baseline(ids: list[str], y: np.ndarray, is_test: np.ndarray, level: float, seed: int) -> Any:
    """AUROC of the fact family alone (the share of hallucinated answers in each family on train):
    how much of the label the question type gives away, with no neuron at all."""
    family = np.array([q.split("/", 1)[0] for q in ids])
    train = ~is_test
    rate = {f: y[train][family[train] == f].mean() for f in set(family[train].tolist())}
    scores = np.array([rate.get(f, y[train].mean()) for f in family[is_test]])
    return stats.auroc(y[is_test], scores, level=level, seed=seed, unit="test questions")


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    arrays, meta = load_features(ctx)
    y, is_test = arrays["label"], arrays["is_test"]
    n = len(y)
    estimates: dict[str, Any] = {}
    values: dict[str, Any] = {"n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
                              "n_candidate_neurons": meta["n_neurons"]}
    for variant, suffix in (("answer", ""), ("all", "_all_tokens")):
        X = arrays[variant].reshape(n, -1)
        fit = fit_probe(X, y, is_test, meta["groups"], cfg.Cs, folds=cfg.cv_folds, seed=cfg.seed)
        for name, est in evaluate(fit.test_scores, y[is_test], cfg.level, cfg.seed).items():
            estimates[name + suffix] = est
        neurons = selected_neurons(fit.coef, meta["d_ffn"])
        values[f"C{suffix}"] = fit.C
        values[f"sweep{suffix}"] = fit.sweep
        values[f"n_neurons{suffix}"] = len(neurons)
        values[f"layer_counts{suffix}"] = layer_counts(neurons, meta["n_layers"])
        values[f"neurons{suffix}"] = neurons
        values[f"test_scores{suffix}"] = [round(float(s), 6) for s in fit.test_scores]
    values["test_labels"] = [int(v) for v in y[is_test]]
    estimates["family_auroc"] = family_baseline(meta["ids"], y, is_test, cfg.level, cfg.seed)
    values["n_neurons_share"] = values["n_neurons"] / meta["n_neurons"]
    estimates["auroc_answer_minus_all"] = stats.auroc_difference(
        y[is_test], np.array(values["test_scores"]), np.array(values["test_scores_all_tokens"]),
        level=cfg.level, seed=cfg.seed, unit="test questions")
    return Result(estimates=estimates, values=values)
