"""The trivial baselines a hallucination detector must beat, on the same test questions of the
same splits as the probe, paired with it:

  logprob         the model's confidence in its kept answer: mean log-probability of its tokens
  entropy         mean entropy of the next-token distributions over the answer's tokens
  greedy_logprob  the confidence in its greedy answer (what it says before any sampling)
  length          the kept answer's length in tokens
  family          the question's family alone (one-hot)
  obscurity       how obscure the subject is (pipeline.data.popularity), as its rank in its family
  combined        all of the above in one logistic regression

Each is a logistic regression fit on the split's training questions and scored on its test
questions. The strongest is the one with the highest mean held-out AUROC (chosen on the test
results, which favours the baseline: the conservative choice); the probe's paired gain over each,
and over the strongest, carries a split-then-item interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig, ProbeConfig, SplitConfig
from pipeline.hneurons.config import BaselineConfig as Config

BASELINES = ("logprob", "entropy", "greedy_logprob", "length", "family", "obscurity", "combined")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"activations": ("pipeline.hneurons.activations", cfg.upstream(ActivationsConfig)),
            "split": ("pipeline.hneurons.split", cfg.upstream(SplitConfig)),
            "probe": ("pipeline.hneurons.probe", cfg.upstream(ProbeConfig))}


def within_family_rank(values: np.ndarray, families: np.ndarray) -> np.ndarray:
    """Percentile rank of each value within its family (missing values: the middle, 0.5)."""
    from scipy.stats import rankdata

    out = np.full(len(values), 0.5)
    for family in np.unique(families):
        rows = np.flatnonzero((families == family) & ~np.isnan(values))
        if len(rows) > 1:
            out[rows] = (rankdata(values[rows]) - 1) / (len(rows) - 1)
    return out


def design(features: dict[str, np.ndarray], families: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's inputs, (N, k)."""
    names = sorted(set(families.tolist()))
    onehot = (families[:, None] == np.array(names)[None, :]).astype(float)
    single = {
        "logprob": features["answer_logprob"][:, None],
        "entropy": features["answer_entropy"][:, None],
        "greedy_logprob": features["greedy_logprob"][:, None],
        "length": features["answer_tokens"][:, None],
        "family": onehot,
        "obscurity": within_family_rank(features["obscurity"], families)[:, None],
    }
    single["combined"] = np.hstack(list(single.values()))
    return single


def scores(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, C: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X[train], y[train])
    return model.predict_proba(X[test])[:, 1]


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    up = ctx.upstream("activations")
    meta, features = up.result.values, up.arrays("features")
    y = features["label"].astype(int)
    families = np.array(meta["families"])
    row = {q: i for i, q in enumerate(meta["ids"])}
    probe = {s["seed"]: s for s in ctx.upstream("probe").result.values["splits"]}
    inputs = design(features, families)
    per: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {b: [] for b in BASELINES}
    for split in ctx.upstream("split").result.values["splits"]:
        train = np.array([row[q] for q in split["train"]])
        test = np.array([row[q] for q in probe[split["seed"]]["test_ids"]])
        y_test = np.array(probe[split["seed"]]["y"])
        if not np.array_equal(y_test, y[test]):
            raise RuntimeError(f"split {split['seed']}: the probe's test labels differ from the features'")
        for b in BASELINES:
            per[b].append((y_test, np.array(probe[split["seed"]]["scores"]), scores(inputs[b], y, train, test, cfg.baseline_C)))
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "test questions"}
    estimates, values = {}, {"baselines": list(BASELINES), "per_split_auroc": {}}
    for b in BASELINES:
        estimates[f"{b}_auroc"] = stats.hierarchical_auroc([(yt, s) for yt, _, s in per[b]], **kw)
        estimates[f"gain_over_{b}"] = stats.hierarchical_auroc_difference(per[b], **kw)
        values["per_split_auroc"][b] = [stats._auc_1d(yt.astype(bool), s) for yt, _, s in per[b]]
    strongest = max(BASELINES, key=lambda b: estimates[f"{b}_auroc"].value)
    estimates["strongest_auroc"] = estimates[f"{strongest}_auroc"]
    estimates["gain_over_strongest"] = estimates[f"gain_over_{strongest}"]
    estimates["probe_auroc"] = stats.hierarchical_auroc([(yt, p) for yt, p, _ in per[strongest]], **kw)
    values.update(strongest=strongest, strongest_label=LABELS[strongest],
                  ranking=sorted(BASELINES, key=lambda b: -estimates[f"{b}_auroc"].value),
                  variant=cfg.variant, n_splits=len(per[strongest]))
    return Result(estimates=estimates, values=values)


LABELS = {"logprob": "the model's confidence in its answer (mean log-probability)", "entropy": "the answer's entropy",
          "greedy_logprob": "the confidence in the greedy answer", "length": "answer length",
          "family": "the question's family", "obscurity": "the subject's obscurity",
          "combined": "all trivial baselines together"}
