"""Step 5: a probe on CETT separates hallucinated from faithful answers, on every split seed.

selection l1          the H-neuron method: an L1 logistic probe on every FFN neuron, C chosen by
                      subject-grouped CV on train; its positive-weight neurons are the H-neurons
                      (read by the steering study), the negative ones are reported beside them
selection univariate  as many neurons as the L1 probe kept, ranked one by one on train, then an L2
                      probe: does the joint selection add anything over a simple ranking?
selection dense       an L2 probe on every neuron: does sparsity cost anything?
shuffle_labels        the training labels permuted within each family: the whole procedure should
                      then be at chance on the true test labels

Held-out AUROC and accuracy are means over the splits with a split-then-item bootstrap interval;
each split's scores are kept so that controls and baselines can pair with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig, SplitConfig
from pipeline.hneurons.config import ProbeConfig as Config
from pipeline.hneurons.probing import fit_probe, layer_counts, selected_neurons, univariate_ranking


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    out = {"activations": ("pipeline.hneurons.activations", cfg.upstream(ActivationsConfig)),
           "split": ("pipeline.hneurons.split", cfg.upstream(SplitConfig))}
    if cfg.selection == "univariate":  # it matches the L1 probe's size, split by split
        out["l1"] = ("pipeline.hneurons.probe", {**config, "selection": "l1", "shuffle_labels": False})
    return out


class Data:
    """The features of one CETT variant, the labels and the splits, as row indices."""

    def __init__(self, ctx: Any, variant: str):
        up = ctx.upstream("activations")
        self.meta = up.result.values
        self.X = up.arrays(f"cett_{variant}")["x"].reshape(self.meta["n_questions"], -1)  # (N, L * F)
        self.features = up.arrays("features")
        self.y = self.features["label"].astype(int)
        self.groups = np.array(self.meta["groups"])
        self.families = np.array(self.meta["families"])
        row = {q: i for i, q in enumerate(self.meta["ids"])}
        self.splits = [(s["seed"], np.array([row[q] for q in s["train"]]), np.array([row[q] for q in s["test"]]))
                       for s in ctx.upstream("split").result.values["splits"]]


def shuffled(y: np.ndarray, train: np.ndarray, families: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels with the training rows permuted within each family (test rows untouched)."""
    out = y.copy()
    for family in np.unique(families[train]):
        rows = train[families[train] == family]
        out[rows] = rng.permutation(y[rows])
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    data = Data(ctx, cfg.variant)
    d_ffn, n_layers = data.meta["d_ffn"], data.meta["n_layers"]
    l1_sizes = ({s["seed"]: s["n_neurons"] for s in ctx.upstream("l1").result.values["splits"]}
                if cfg.selection == "univariate" else {})
    ckpt = ctx.checkpoint("splits")
    per_split = []
    for seed, train, test in ctx.progress(data.splits, total=len(data.splits), desc=f"{cfg.selection} probes"):
        if seed not in ckpt:
            y = shuffled(data.y, train, data.families, np.random.default_rng([cfg.seed, seed, 7])) \
                if cfg.shuffle_labels else data.y
            entry: dict[str, Any] = {"seed": seed}
            if cfg.selection == "l1":
                fit = fit_probe(data.X, y, train, test, data.groups, cfg.Cs, penalty="l1", folds=cfg.cv_folds,
                                seed=cfg.seed, n_jobs=cfg.n_jobs)
                entry["neurons"] = selected_neurons(fit.coef, d_ffn)
            elif cfg.selection == "univariate":
                top = univariate_ranking(data.X[train], y[train])[: max(1, l1_sizes[seed])]
                fit = fit_probe(data.X[:, top], y, train, test, data.groups, cfg.l2_Cs, penalty="l2",
                                folds=cfg.cv_folds, seed=cfg.seed, n_jobs=cfg.n_jobs)
                entry["neurons"] = [{"layer": int(i // d_ffn), "neuron": int(i % d_ffn)} for i in top]
            else:
                fit = fit_probe(data.X, y, train, test, data.groups, cfg.l2_Cs, penalty="l2", folds=cfg.cv_folds,
                                seed=cfg.seed, n_jobs=cfg.n_jobs)
            entry.update(test_ids=[data.meta["ids"][i] for i in test], y=data.y[test].tolist(),
                         scores=[round(float(s), 6) for s in fit.test_scores], C=fit.C, sweep=fit.sweep,
                         n_neurons=len(entry.get("neurons", [])) if cfg.selection != "dense" else int(data.X.shape[1]))
            ckpt[seed] = entry
        per_split.append(ckpt[seed])
    pairs = [(np.array(s["y"]), np.array(s["scores"])) for s in per_split]
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "test questions"}
    per_split_auroc = [stats._auc_1d(y.astype(bool), s) for y, s in pairs]
    values: dict[str, Any] = {
        "variant": cfg.variant, "selection": cfg.selection, "shuffle_labels": cfg.shuffle_labels,
        "splits": per_split, "n_splits": len(per_split), "per_split_auroc": per_split_auroc,
        "auroc_min_split": min(per_split_auroc), "auroc_max_split": max(per_split_auroc),
        "n_test": int(np.mean([len(s["y"]) for s in per_split])), "n_candidate_neurons": int(data.X.shape[1]),
        "n_neurons": int(np.mean([s["n_neurons"] for s in per_split])),
        "n_neurons_per_split": [s["n_neurons"] for s in per_split],
    }
    if cfg.selection == "l1":
        primary = per_split[0]["neurons"]  # the first split seed's probe defines the H-neurons
        positive = [n for n in primary if n["weight"] > 0]
        negative = [n for n in primary if n["weight"] < 0]
        values.update(neurons=primary, n_neurons_primary=len(primary), h_neurons=positive, negative_neurons=negative,
                      n_h_neurons=len(positive),
                      n_negative_neurons=len(negative), layer_counts=layer_counts(primary, n_layers),
                      h_layer_counts=layer_counts(positive, n_layers), primary_split_seed=per_split[0]["seed"])
    estimates = {"auroc": stats.hierarchical_auroc(pairs, **kw), "accuracy": stats.hierarchical_accuracy(pairs, **kw)}
    if cfg.shuffle_labels:
        estimates["auroc_minus_chance"] = stats.hierarchical(
            [{"y": y.astype(bool), "s": s} for y, s in pairs], lambda d: stats._auc_1d(d["y"], d["s"]) - 0.5, **kw)
    return Result(estimates=estimates, values=values)
