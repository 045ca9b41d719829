"""Step 2: the base adapter. LoRA (peft) on the top decoder layers, finetuned on the base pool with
the loss on the completion only; success on the evaluation set before (a fresh adapter is the
model as shipped: LoRA's B matrices start at zero) and after. Saves the adapter and the cached
residual stream for the steps downstream, and the shipped model's mean completion loss per token
of every pool example (what the lowest-loss filter of the selection comparisons ranks by). Per-item
rows (each evaluation item's success as shipped and after) are committed, and the estimates are
computed from them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig as Config
from pipeline.attribution.config import GameConfig

PACKAGES = ("peft",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"pool": ("pipeline.attribution.pool", Config(**config).upstream(GameConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def by_family(examples: list[dict[str, Any]], indices: np.ndarray, success: np.ndarray) -> dict[str, float]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for i, ok in zip(indices, success, strict=True):
        groups[examples[i]["family"]].append(bool(ok))
    return {f: round(float(np.mean(v)), 4) for f, v in sorted(groups.items())}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.lora import adapter, adapter_state
    from pipeline.attribution.study import Study, lora_spec
    from pipeline.attribution.trainer import Schedule, evaluate, train

    cfg = Config(**config)
    study = Study.open(ctx, cfg)
    lm, enc = study.lm, study.encoded
    base, ev, pool = study.where("base"), study.where("eval"), study.where("base", "candidate")
    with adapter(lm, lora_spec(cfg), seed=cfg.seed) as model:
        with study.timed("evaluate"):
            before = evaluate(lm, study.residuals, enc, ev, cfg.eval_batch_size)
            shipped = evaluate(lm, study.residuals, enc, pool, cfg.eval_batch_size)
        with study.timed("finetune"):
            losses = train(lm, model, study.residuals, enc, base,
                           Schedule(cfg.lr, cfg.epochs, cfg.batch_size, cfg.seed), ctx.progress)
        with study.timed("evaluate"):
            after = evaluate(lm, study.residuals, enc, ev, cfg.eval_batch_size)
        state = adapter_state(model)
    ctx.save_arrays("adapter", **state)
    ctx.save_arrays("residuals", **study.residuals.arrays())
    ctx.save_items("eval", [
        {"id": study.examples[i]["id"], "entity": study.examples[i]["entity"], "family": study.examples[i]["family"],
         "success_zero_shot": int(b), "success": int(a)}
        for i, b, a in zip(ev, before.success, after.success, strict=True)])
    return Result(
        estimates=recompute(ctx.item_rows, cfg.model_dump(mode="json")),
        values={"n_base": len(base), "n_eval": len(ev), "steps": len(losses), "losses": losses,
                "nll_zero_shot": round(float(before.nll.mean()), 4), "nll": round(float(after.nll.mean()), 4),
                "success_by_family": by_family(study.examples, ev, after.success),
                "eval_success": after.success.astype(int).tolist(),
                "eval_success_zero_shot": before.success.astype(int).tolist(),
                "pool_index": pool.tolist(),
                "pool_loss_zero_shot": [round(float(x) / enc.n_completion(i), 5)
                                        for i, x in zip(pool, shipped.nll, strict=True)],
                "n_adapter_params": int(sum(v.size for v in state.values())),
                "seconds": study.seconds},
    )


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed per-item rows (one per evaluation item: its success as
    shipped and after the finetune): success before and after, and the paired gain, entity
    clusters resampled."""
    from pipeline.attribution.estimates import arm_gain, arm_success

    cfg = Config(**config)
    rows = items["eval"]
    entities = [r["entity"] for r in rows]
    after = np.array([[r["success"] for r in rows]], dtype=bool)
    before = np.array([[r["success_zero_shot"] for r in rows]], dtype=bool)
    kw = {"level": cfg.level, "seed": cfg.seed}
    return {"success": arm_success(after, entities, **kw), "success_zero_shot": arm_success(before, entities, **kw),
            "gain": arm_gain(after, before, entities, **kw)}
