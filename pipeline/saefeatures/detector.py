"""The thesis test, detection side: does a probe on SAE features detect hallucination, on the
detection study's own questions, labels and splits, better than the neuron probe and than the
model's confidence in its answer?

features sae     every latent of every SAE, averaged over the tokens of the kept sampled answer
                 (the same text and answer span the neuron probe reads CETT on), one decoder pass
                 per batch reading every SAE layer; an L1 logistic probe per split, C chosen by
                 subject-grouped CV on train (pipeline.hneurons.probing.fit_probe, the neuron
                 probe's procedure). Paired on the same test questions with the neuron probe
                 (pipeline.hneurons.probe) and the log-probability baseline
                 (pipeline.hneurons.baselines), split-then-item intervals (pipeline.stats).
features random  the control: random latent sets matched to the SAE probe's, latent for latent, on
                 SAE (layer) and mean activation on the training questions, each given an L2 probe;
                 the SAE probe's rank among them is a p-value (pipeline.saefeatures.detector_random).

Per-item rows are committed (`claims recompute`): the probe's per test question and split (label and
the SAE probe's, the log-probability baseline's and the neuron probe's scores), the control's per
test question and split (label, the SAE probe's score and every random set's) and per set and split
(its AUROC).

The SAE probe's positive-weight latents on the first split are the "H-features" the steering
node scales.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import ActivationsConfig, BaselineConfig, ProbeConfig, SampleConfig, SplitConfig

PACKAGES = ("sae-lens",)


class Config(BaselineConfig):
    sae: dict[str, Any] = Field(default_factory=dict, description="Settings of the SAE node beyond profile and "
                                "seed (pipeline.saefeatures.config.SAEConfig; empty: the profile's SAEs).")
    features: Literal["sae", "random"] = Field("sae", description="sae: the SAE-feature probe; random: matched "
                                               "random latent sets (the control).")
    n_sets: int = Field(100, ge=1, description="Random latent sets per split (features: random).")
    match_pool: int = Field(5, ge=1, description="A random latent is drawn among this many latents of its SAE "
                            "nearest the activation it must match (features: random; detector_random."
                            "matched_latent_set).")


#: Settings of the control only: the SAE probe it ranks is the same node whatever they are.
RANDOM_ONLY = ("features", "n_sets", "match_pool")


def sae_node(cfg: Config) -> dict[str, Any]:
    from pipeline.saefeatures.config import SAEConfig

    return SAEConfig(**{"profile": cfg.profile, "seed": cfg.seed, **cfg.sae}).model_dump(mode="json")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    probe = cfg.upstream(ProbeConfig)
    out = {"labels": ("pipeline.hneurons.sample", cfg.upstream(SampleConfig)),
           "split": ("pipeline.hneurons.split", cfg.upstream(SplitConfig)),
           "activations": ("pipeline.hneurons.activations", cfg.upstream(ActivationsConfig)),
           "probe": ("pipeline.hneurons.probe", {**probe, "selection": "l1", "shuffle_labels": False}),
           "saes": ("pipeline.saefeatures.saes", sae_node(cfg))}
    if cfg.features == "random":
        out["sae_probe"] = ("pipeline.saefeatures.detector",
                            {**{k: v for k, v in config.items() if k not in RANDOM_ONLY}, "features": "sae"})
    return out


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def answer_features(ctx: Any, cfg: Config, rows: list[dict[str, Any]]) -> tuple[np.ndarray, list[Any]]:
    """(N, total latents): each SAE's codes averaged over the answer's tokens; checkpointed per batch."""
    import torch

    from pipeline.hneurons.activations import text_and_spans
    from pipeline.hneurons.cett import encode_with_spans
    from pipeline.models import load
    from pipeline.saefeatures.dictionary import load_saes
    from pipeline.saefeatures.residuals import read_layers

    lm = load(cfg.profile)
    saes = load_saes(ctx.upstream("saes"))
    ckpt = ctx.checkpoint("answer-features")
    starts = range(0, len(rows), cfg.forward_batch_size)
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc="SAE features of the answers")):
        if b in ckpt:
            continue
        texts, spans = zip(*(text_and_spans(r["prompt"], r["response"]) for r in rows[start:start + cfg.forward_batch_size]),
                           strict=True)
        ids, mask, masks = encode_with_spans(lm.tokenizer, texts, {"answer": [s["answer"] for s in spans]})
        acts = read_layers(lm, ids, mask, [d.layer for d in saes])
        w = masks["answer"].float()
        w = w / w.sum(dim=1, keepdim=True).clamp(min=1)
        ckpt[b] = {"x": np.concatenate([torch.einsum("bt,btf->bf", w, d.encode(acts[d.layer])).numpy()
                                        for d in saes], axis=1)}
    return np.concatenate([ckpt[b]["x"] for b in range(len(starts))]), saes


def by_split(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Per-item rows grouped by their split, splits and items in the order they were saved."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["split"], []).append(r)
    return list(groups.values())


def question_rows(per_split: list[dict[str, Any]], neuron: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per split and test question: its label and the three detectors' scores on it."""
    rows = []
    for s in per_split:
        other = neuron[s["seed"]]
        if other["test_ids"] != s["test_ids"]:
            raise RuntimeError(f"split {s['seed']}: the two detectors were tested on different questions")
        rows += [{"split": s["seed"], "id": q, "label": "hallucinated" if y else "faithful", "sae": a, "logprob": b,
                  "neuron": c}
                 for q, y, a, b, c in zip(s["test_ids"], s["y"], s["scores"], s["logprob"], other["scores"], strict=True)]
    return rows


def detector_estimates(rows: list[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """The AUROCs and their paired differences from the per-item rows (split-then-item intervals)."""
    splits = [(np.array([r["label"] == "hallucinated" for r in g]),
               {k: np.array([r[k] for r in g], dtype=float) for k in ("sae", "logprob", "neuron")})
              for g in by_split(rows)]
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "test questions"}
    return {
        "sae_auroc": stats.hierarchical_auroc([(y, s["sae"]) for y, s in splits], **kw),
        "neuron_auroc": stats.hierarchical_auroc([(y, s["neuron"]) for y, s in splits], **kw),
        "logprob_auroc": stats.hierarchical_auroc([(y, s["logprob"]) for y, s in splits], **kw),
        "sae_minus_neuron": stats.hierarchical_auroc_difference([(y, s["sae"], s["neuron"]) for y, s in splits], **kw),
        "sae_minus_logprob": stats.hierarchical_auroc_difference([(y, s["sae"], s["logprob"]) for y, s in splits],
                                                                 **kw),
    }


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed rows: the probe's from its test rows, the control's from the
    random sets' scores."""
    cfg = Config(**config)
    if cfg.features == "random":
        from pipeline.saefeatures.detector_random import control_estimates

        return control_estimates(items["scores"], cfg)
    return detector_estimates(items["tests"], cfg)


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    if cfg.features == "random":
        from pipeline.saefeatures.detector_random import run_random

        return run_random(cfg, ctx)
    from pipeline.hneurons.baselines import design, scores
    from pipeline.hneurons.probing import fit_probe
    from pipeline.hneurons.split import group_of, labelled_rows
    from pipeline.steering.summary import minimum_detectable

    rows = labelled_rows(ctx.upstream("labels").json("labels"))
    acts_up = ctx.upstream("activations")
    if [r["id"] for r in rows] != acts_up.result.values["ids"]:
        raise RuntimeError("the labelled questions differ from the neuron activations' questions")
    X, saes = answer_features(ctx, cfg, rows)
    ctx.save_arrays("features", x=X.astype(np.float32))
    y = np.array([int(r["label"] == "hallucinated") for r in rows])
    groups = np.array([group_of(r) for r in rows])
    families = np.array([r["family"] for r in rows])
    logprob = design(acts_up.arrays("features"), families)["logprob"]
    row = {r["id"]: i for i, r in enumerate(rows)}
    widths = [d.width for d in saes]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    ckpt = ctx.checkpoint("splits")
    per_split = []
    for split in ctx.progress(ctx.upstream("split").result.values["splits"], desc="SAE-feature probes"):
        if split["seed"] not in ckpt:
            train, test = np.array([row[q] for q in split["train"]]), np.array([row[q] for q in split["test"]])
            fit = fit_probe(X, y, train, test, groups, cfg.Cs, penalty="l1", folds=cfg.cv_folds, seed=cfg.seed,
                            n_jobs=cfg.n_jobs)
            kept = np.flatnonzero(fit.coef)
            kept = kept[np.argsort(-np.abs(fit.coef[kept]), kind="stable")]
            latents = [{"layer": saes[int(np.searchsorted(offsets, i, side="right") - 1)].layer,
                        "index": int(i - offsets[np.searchsorted(offsets, i, side="right") - 1]), "flat": int(i),
                        "weight": float(fit.coef[i])} for i in kept]
            ckpt[split["seed"]] = {
                "seed": split["seed"], "test_ids": split["test"], "y": y[test].tolist(),
                "scores": [round(float(s), 6) for s in fit.test_scores], "C": fit.C, "latents": latents,
                "logprob": [round(float(s), 6) for s in scores(logprob, y, train, test, cfg.baseline_C)]}
        per_split.append(ckpt[split["seed"]])
    tests = question_rows(per_split, {s["seed"]: s for s in ctx.upstream("probe").result.values["splits"]})
    ctx.save_items("tests", tests)
    estimates = detector_estimates(tests, cfg)
    first = per_split[0]["latents"]
    return Result(estimates=estimates, values={
        "splits": per_split, "n_splits": len(per_split), "ids": [r["id"] for r in rows],
        "first_train_ids": ctx.upstream("split").result.values["splits"][0]["train"], "n_test": int(np.mean([len(s["y"]) for s in per_split])),
        "n_candidate_latents": int(X.shape[1]), "layers": [d.layer for d in saes], "widths": widths,
        "n_latents": int(np.mean([len(s["latents"]) for s in per_split])),
        "h_features": [f for f in first if f["weight"] > 0], "n_h_features": sum(f["weight"] > 0 for f in first),
        "n_neurons": ctx.upstream("probe").result.values["n_neurons"],
        "minimum_detectable": {name: minimum_detectable(estimates[name], 0.8, 0.05)
                               for name in ("sae_minus_neuron", "sae_minus_logprob")}})
