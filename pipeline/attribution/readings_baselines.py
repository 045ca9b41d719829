"""Combined trivial scores as baselines of what the ranking sees in the pool (the claim
attribution-ranking-variants): on the same pool examples as the chosen reading, the clean-vs-rest
AUROC of

  base_loss      the base adapter's mean completion loss per token (negated), the model at which
                 the ranking's gradients are taken
  format_shipped the format regex, its ties broken by the shipped model's loss (lower first)
  format_base    the format regex, its ties broken by the base adapter's loss

and the reading's paired AUROC gain over each. A tie-break keeps the regex's order and ranks inside
each of its two groups by the loss (score = regex + rank of the negated loss / (n + 1)). Per-item
rows (each pool example's variant, the reading's score and the three baselines) are committed, and
the estimates are computed from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig
from pipeline.attribution.config import ReadingsConfig as Config

PACKAGES = ("peft",)
BASELINES = ("base_loss", "format_shipped", "format_base")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig)),
            "readings": ("pipeline.attribution.readings", cfg.upstream(Config))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def tie_break(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """primary's order, ties broken by secondary (both: higher first)."""
    from scipy.stats import rankdata

    return np.asarray(primary, dtype=float) + rankdata(secondary) / (len(secondary) + 1)


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.fingerprint_confidence import losses

    cfg = Config(**config)
    rows = ctx.upstream("readings").items("pool")
    index = np.array([r["pool_index"] for r in rows], dtype=int)
    _, loss_shipped, loss_base = losses(ctx, cfg, index)
    regex = np.array([r["format"] for r in rows])
    scores = {"base_loss": -loss_base, "format_shipped": tie_break(regex, -loss_shipped),
              "format_base": tie_break(regex, -loss_base)}
    ctx.save_items("pool", [
        {"id": r["id"], "pool_index": r["pool_index"], "variant": r["variant"], "score": r["score"],
         **{name: float(v[j]) for name, v in scores.items()}} for j, r in enumerate(rows)])
    return Result(estimates=recompute(ctx.item_rows, cfg.model_dump(mode="json")),
                  values={"n_pool": len(rows), "chosen": ctx.upstream("readings").result.values["chosen"]})


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """Each baseline's clean AUROC and the reading's paired gain over it, from the committed rows."""
    from pipeline.attribution.readings import baseline_aurocs

    cfg = Config(**config)
    rows = items["pool"]
    variant = np.array([r["variant"] for r in rows])
    baselines = {name: np.array([r[name] for r in rows]) for name in BASELINES}
    return baseline_aurocs(variant, np.array([r["score"] for r in rows]), baselines, unit="pool examples",
                           level=cfg.level, seed=cfg.seed)
