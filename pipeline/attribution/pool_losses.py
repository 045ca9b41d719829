"""Each pool example's mean completion loss per token under the shipped model and under the base
adapter (the model at which the attribution's gradients are taken), computed once for the selection
arms: the base adapter's loss orders the format_base_loss filter and is a reported covariate of every
matched random draw (pipeline/attribution/subsets.py). Per-example rows are committed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig as Config
from pipeline.attribution.config import GameConfig

PACKAGES = ("peft",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(Config))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.fingerprint_confidence import losses

    cfg = Config(**config)
    index = np.asarray(ctx.upstream("finetune").result.values["pool_index"], dtype=int)
    study, shipped, base = losses(ctx, cfg, index)
    ctx.save_items("pool", [{"pool_index": int(i), "id": study.examples[i]["id"], "loss_shipped": round(float(s), 5),
                             "loss_base": round(float(b), 5)} for i, s, b in zip(index, shipped, base, strict=True)])
    return Result(values={"pool_index": index.tolist(), "loss_shipped": [round(float(x), 5) for x in shipped],
                          "loss_base": [round(float(x), 5) for x in base], "n_pool": len(index)})


def per_example(values: dict[str, Any], n: int, name: str) -> np.ndarray:
    """values[name] spread over example indices 0..n-1 (NaN where an example is not in the pool)."""
    out = np.full(n, np.nan)
    out[np.asarray(values["pool_index"], dtype=int)] = values[name]
    return out
