"""The trivial baseline of the base finetune: the model as shipped, shown solved examples in its
prompt instead of being trained on them. Each evaluation item's prompt is preceded by `n_shots`
clean examples of its own family from the base pool (the finetune's training data), each written
as prompt and completion (`... Answer: Laos` and a newline), chosen per item by a seeded hash, so
that the model sees the task, the format and the end of the line as the finetune does, only
in-context. Success is read exactly as everywhere in this study: every completion token is the
argmax at its position in one teacher-forced pass (`trainer.evaluate`, no adapter).

The finetune's per-item outcomes (the `finetune` node's committed rows: success as shipped and after
the finetune, on the same items) are read through a ROWS_ONLY edge, so this node never remakes the
finetune's adapter or cached residual stream. It reports, on the same items, paired and entity
clusters resampled: the few-shot success, its gain over zero-shot, and the finetune's gain over it.
The node also scores the items zero-shot itself and reports how many agree with the finetune node's
zero-shot rows (no check when both are all failures, as on the embedded profile). One finetune and
one draw of shots: the interval resamples items (entity clusters) only, and `finetune_gain_mde` is
the difference it detects. Per-item rows are committed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig
from pipeline.attribution.finetune import by_family, inputs  # noqa: F401  (inputs: the same model as the finetune's)

ROWS_ONLY = ("finetune",)


class Config(FinetuneConfig):
    n_shots: int = Field(3, ge=1, description="Solved examples of the item's family put before its prompt.")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig))}


def shots_for(item: dict[str, Any], pool: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """The n clean, unambiguous base-pool examples of the item's family that come first in a hash
    order seeded by (seed, item id): a different draw for every item, the same on every run."""
    same = [e for e in pool if e["family"] == item["family"] and e["variant"] == "clean" and not e["ambiguous"]]
    if len(same) < n:
        raise ValueError(f"family {item['family']!r} has {len(same)} clean base-pool examples, fewer than {n} shots")

    def order(e: dict[str, Any]) -> str:
        return hashlib.sha256(f"{seed}|{item['id']}|{e['id']}".encode()).hexdigest()

    return sorted(same, key=order)[:n]


def with_shots(item: dict[str, Any], shots: list[dict[str, Any]]) -> dict[str, Any]:
    """The item with its shots written before its prompt (its completion, the target, unchanged)."""
    return {**item, "prompt": "".join(s["prompt"] + s["completion"] for s in shots) + item["prompt"]}


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the per-item rows (each evaluation item's success zero-shot, few-shot and
    after the finetune): success few-shot, its gain over zero-shot, the finetune's gain over it."""
    from pipeline.attribution.estimates import arm_gain, arm_success

    cfg = Config(**config)
    rows = items["eval"]
    entities = [r["entity"] for r in rows]
    col = {k: np.array([[r[k] for r in rows]], dtype=bool) for k in ("success_zero_shot", "success_few_shot",
                                                                    "success_finetuned")}
    kw = {"level": cfg.level, "seed": cfg.seed}
    return {"success_few_shot": arm_success(col["success_few_shot"], entities, **kw),
            "few_shot_gain": arm_gain(col["success_few_shot"], col["success_zero_shot"], entities, **kw),
            "finetune_gain_over_few_shot": arm_gain(col["success_finetuned"], col["success_few_shot"], entities, **kw),
            "success_finetuned": arm_success(col["success_finetuned"], entities, **kw)}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.estimates import mde
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.study import lora_spec
    from pipeline.attribution.trainer import evaluate
    from pipeline.models import load

    cfg = Config(**config)
    examples = ctx.upstream("pool").json("examples")
    finetuned = {r["id"]: r for r in ctx.upstream("finetune").items("eval")}
    items = [e for e in examples if e["split"] == "eval"]
    if sorted(finetuned) != sorted(e["id"] for e in items):
        raise ValueError("the finetune node's rows are not this pool's evaluation items")
    base = [e for e in examples if e["split"] == "base"]
    shots = {e["id"]: shots_for(e, base, cfg.n_shots, cfg.seed) for e in items}
    lm = load(cfg.profile)
    start = lora_spec(cfg).first_layer(lm.n_layers)
    scored, encoded = {}, {}
    for name, texts in (("zero", items), ("few", [with_shots(e, shots[e["id"]]) for e in items])):
        encoded[name] = encode(lm.tokenizer, texts)
        cache = Residuals.capture(lm, encoded[name], start, cfg.eval_batch_size, ctx.progress)
        scored[name] = evaluate(lm, cache, encoded[name], range(len(items)), cfg.eval_batch_size)
    rows = [{"id": e["id"], "entity": e["entity"], "family": e["family"],
             "success_zero_shot": int(finetuned[e["id"]]["success_zero_shot"]),
             "success_few_shot": int(scored["few"].success[i]), "success_finetuned": int(finetuned[e["id"]]["success"]),
             "shots": [s["id"] for s in shots[e["id"]]]} for i, e in enumerate(items)]
    ctx.save_items("eval", rows)
    agree = sum(int(scored["zero"].success[i]) == r["success_zero_shot"] for i, r in enumerate(rows))
    indices = range(len(items))
    n_prompt = encoded["few"].n_prompt  # <bos> and the shots included
    estimates = recompute(ctx.item_rows, config)
    return Result(estimates=estimates, values={
        "finetune_gain_mde": mde(estimates["finetune_gain_over_few_shot"]), "n_shots": cfg.n_shots,
        "n_eval": len(items), "zero_shot_agreement": agree,
        "zero_shot_success_here": round(float(scored["zero"].success.mean()), 4),
        "nll_few_shot": round(float(scored["few"].nll.mean()), 4),
        "few_shot_by_family": by_family(items, indices, scored["few"].success),
        "finetuned_by_family": by_family(items, indices, [r["success_finetuned"] for r in rows]),
        "prompt_tokens_mean": round(float(np.mean(n_prompt)), 1), "prompt_tokens_max": int(max(n_prompt))})
