"""Step 6, the control: probes on random neuron sets of the probe's size (matched per layer by
default), one per seed, with C chosen the same way (L2 here: the set is already chosen). Their
mean held-out accuracy and AUROC over seeds carry item-bootstrap intervals (items resampled
jointly across seeds), and the probe's accuracy and AUROC gains over them paired intervals (the same
test questions resampled for both).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig, ProbeConfig
from pipeline.hneurons.config import RandomProbeConfig as Config
from pipeline.hneurons.probing import fit_probe, random_neurons


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"activations": ("pipeline.hneurons.activations", cfg.upstream(ActivationsConfig)),
            "probe": ("pipeline.hneurons.probe", cfg.upstream(ProbeConfig))}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from sklearn.metrics import roc_auc_score

    cfg = Config(**config)
    up = ctx.upstream("activations")
    arrays, meta = up.arrays("cett"), up.result.values
    probe = ctx.upstream("probe").result.values
    if not probe["n_neurons"]:
        raise ValueError("the probe kept no neuron: there is no set size to match")
    y, is_test = arrays["label"], arrays["is_test"]
    X = arrays["answer"].reshape(len(y), -1)
    y_test = y[is_test]
    scores, sets = [], []
    for s in ctx.progress(range(cfg.seeds), total=cfg.seeds, desc="random-neuron probes"):
        rng = np.random.default_rng([cfg.seed, s])
        idx = random_neurons(probe["layer_counts"], meta["d_ffn"], rng, cfg.matched_layers)
        fit = fit_probe(X[:, idx], y, is_test, meta["groups"], cfg.Cs, penalty="l2", folds=cfg.cv_folds,
                        seed=cfg.seed)
        scores.append(fit.test_scores)
        sets.append({"seed": s, "C": fit.C, "n_neurons": len(idx)})
    S = np.stack(scores, axis=1)  # (n_test, seeds)
    correct = (S >= 0.5) == y_test[:, None].astype(bool)  # (n_test, seeds)
    probe_correct = (np.array(probe["test_scores"]) >= 0.5) == y_test.astype(bool)
    accuracy = stats.bootstrap_items(lambda i: correct[i].mean(), len(y_test), level=cfg.level, seed=cfg.seed,
                                     unit="test questions")
    per_seed_auc = [float(roc_auc_score(y_test, S[:, k])) for k in range(S.shape[1])]
    return Result(
        estimates={
            "accuracy": accuracy,
            "auroc": stats.auroc(y_test, S, level=cfg.level, seed=cfg.seed, unit="test questions"),
            "accuracy_gain": stats.bootstrap_items(
                lambda i: float(probe_correct[i].mean() - correct[i].mean()), len(y_test), level=cfg.level,
                seed=cfg.seed, unit="test questions"),
            "auroc_gain": stats.auroc_difference(y_test, np.array(probe["test_scores"]), S,
                                                 level=cfg.level, seed=cfg.seed, unit="test questions"),
        },
        values={"seeds": cfg.seeds, "n_neurons": int(sets[0]["n_neurons"]) if sets else 0,
                "matched_layers": cfg.matched_layers, "per_seed_accuracy": correct.mean(axis=0).tolist(),
                "per_seed_auroc": per_seed_auc, "max_seed_auroc": max(per_seed_auc), "sets": sets},
    )
