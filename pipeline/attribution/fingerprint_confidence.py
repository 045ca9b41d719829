"""The model's confidence as a baseline of the fingerprint: what the model itself says of each pool
example, put through the fingerprint's family-held-out ridge regression and scored on the same
reported families, so that the fingerprint's gain over it is paired on the same examples.

  loss_shipped   mean completion loss per token under the shipped model (what the lowest-loss
                 filter ranks by; from the base finetune's node)
  loss_base      the same under the base adapter, where the attribution's gradients are taken
  loss           both losses together
  text_loss      both losses and the text features (length, completion length, format regex)
  format_length  the format regex crossed with length (length, regex, their product): the
                 interaction the additive text baseline lacks

A per-example loss flags noisy and off-format examples almost by definition, and the rank being
predicted is a gradient score of that loss, so these are the baselines a fingerprint of the text
has to beat. Estimates: each baseline's Spearman with the attribution rank, the fingerprint's paired
gain over each (entity clusters resampled), and gain_over_best over the strongest. Per-example rows
(both losses and every prediction beside the fingerprint's) are committed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig
from pipeline.attribution.config import FingerprintConfig as Config

PACKAGES = ("peft",)
BASELINES = ("loss_shipped", "loss_base", "loss", "text_loss", "format_length")
LABELS = {"loss_shipped": "the shipped model's loss", "loss_base": "the base adapter's loss",
          "loss": "both losses", "text_loss": "both losses with the text features",
          "format_length": "the format regex crossed with length"}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig)),
            "fingerprint": ("pipeline.attribution.fingerprint", cfg.upstream(Config))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def features(loss_shipped: np.ndarray, loss_base: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's design matrix (one row per example); text is fingerprint.metadata_features'
    (length, completion length, format regex)."""
    losses = np.stack([loss_shipped, loss_base], axis=1)
    length, regex = text[:, :1], text[:, 2:3]
    return {"loss_shipped": loss_shipped[:, None], "loss_base": loss_base[:, None], "loss": losses,
            "text_loss": np.hstack([text, losses]), "format_length": np.hstack([length, regex, length * regex])}


def losses(ctx: Any, cfg: Any, index: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """The study, and the shipped model's and the base adapter's mean completion loss per token of
    the pool examples `index` (the former from the base finetune's node, the latter computed here
    with its saved adapter on the cached residual stream)."""
    from pipeline.attribution.lora import adapter
    from pipeline.attribution.study import Study, lora_spec
    from pipeline.attribution.trainer import evaluate

    study, state = Study.from_finetune(ctx, cfg)
    tuned = ctx.upstream("finetune").result.values
    shipped = dict(zip(tuned["pool_index"], tuned["pool_loss_zero_shot"], strict=True))
    missing = [int(i) for i in index if int(i) not in shipped]
    if missing:
        raise ValueError(f"the base finetune has no shipped-model loss for pool examples {missing[:5]}")
    with adapter(study.lm, lora_spec(cfg), state=state):
        scored = evaluate(study.lm, study.residuals, study.encoded, index, cfg.eval_batch_size)
    loss_base = scored.nll / np.array([study.encoded.n_completion(int(i)) for i in index])
    return study, np.array([shipped[int(i)] for i in index], dtype=float), loss_base


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import grouped_predictions
    from pipeline.attribution.fingerprint import metadata_features

    cfg = Config(**config)
    rows = ctx.upstream("fingerprint").items("examples")
    index = np.array([r["pool_index"] for r in rows], dtype=int)
    cpu = time.process_time()
    study, loss_shipped, loss_base = losses(ctx, cfg, index)
    seconds = {"loss_base_cpu": round(time.process_time() - cpu, 2)}
    examples = [study.examples[i] for i in index]
    n_tokens = np.array([r["n_tokens"] for r in rows])
    text = metadata_features(examples, n_tokens)["text"]
    y = np.array([r["rank"] for r in rows])
    groups = np.array([r["family"] for r in rows])
    preds = {name: grouped_predictions(X, y, groups, cfg.alphas, cfg.seed)
             for name, X in features(loss_shipped, loss_base, text).items()}
    ctx.save_items("examples", [
        {"id": r["id"], "pool_index": r["pool_index"], "family": r["family"], "entity": r["entity"],
         "variant": r["variant"], "n_tokens": r["n_tokens"], "reported": r["reported"], "rank": r["rank"],
         "pred_sae": r["pred_sae"], "loss_shipped": round(float(loss_shipped[j]), 5),
         "loss_base": round(float(loss_base[j]), 5),
         **{f"pred_{name}": round(float(p[j]), 6) for name, p in preds.items()}}
        for j, r in enumerate(rows)])
    estimates = recompute(ctx.item_rows, cfg.model_dump(mode="json"))
    best = max(BASELINES, key=lambda b: estimates[f"spearman_{b}"].value)
    reported = np.array([r["reported"] for r in rows])
    variant = np.array([r["variant"] for r in rows])
    mean_loss = {v: {"shipped": round(float(loss_shipped[reported & (variant == v)].mean()), 4),
                     "base": round(float(loss_base[reported & (variant == v)].mean()), 4)}
                 for v in sorted(set(variant[reported].tolist()))}
    return Result(estimates=estimates, values={
        "best_baseline": best, "best_baseline_label": LABELS[best], "n_examples": len(rows), "n_reported": int(reported.sum()),
        "mean_loss": mean_loss, "seconds": seconds})


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed per-example rows, on the reported families: the
    fingerprint's Spearman, each baseline's, the fingerprint's paired gain over each, and over the
    strongest (gain_over_best, with that baseline's Spearman as spearman_best)."""
    from pipeline.attribution.estimates import spearman_estimate, spearman_gain

    cfg = Config(**config)
    rows = [r for r in items["examples"] if r["reported"]]
    y = np.array([r["rank"] for r in rows])
    entities = [r["entity"] for r in rows]
    pred = {name: np.array([r[f"pred_{name}"] for r in rows]) for name in ("sae", *BASELINES)}
    kw = {"level": cfg.level, "seed": cfg.seed}
    estimates = {"spearman": spearman_estimate(pred["sae"], y, entities, **kw)}
    for name in BASELINES:
        estimates[f"spearman_{name}"] = spearman_estimate(pred[name], y, entities, **kw)
        estimates[f"gain_over_{name}"] = spearman_gain(pred["sae"], pred[name], y, entities, **kw)
    best = max(BASELINES, key=lambda b: estimates[f"spearman_{b}"].value)
    estimates["spearman_best"] = estimates[f"spearman_{best}"]
    estimates["gain_over_best"] = estimates[f"gain_over_{best}"]
    return estimates
