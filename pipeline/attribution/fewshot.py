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
zero-shot rows (no check when both are all failures, as on the embedded profile).

Variance of the two recipes: `n_shot_draws` draws of shots (draw 0 is the first round's; draw d > 0
seeds the hash with (seed, d)) and `train_seeds`, more finetunes of the base pool with the finetune
node's recipe and these seeds (the node's own finetune is the first run; these train here, from a
residual stream this node captures, one at a time as the finetune node trains). The intervals then
resample draws and finetunes within each recipe and entity clusters of the items once for both;
`finetune_gain_mde` is the difference the design detects. Per-item rows (each draw's and each
finetune's success) are committed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import Field

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig
from pipeline.attribution.finetune import inputs  # noqa: F401  (inputs: the same model as the finetune's)

ROWS_ONLY = ("finetune",)


class Config(FinetuneConfig):
    n_shots: int = Field(3, ge=1, description="Solved examples of the item's family put before its prompt.")
    n_shot_draws: int = Field(1, ge=1, description="Draws of shots per item (draw 0: the hash seeded by `seed`; "
                              "draw d: by (seed, d)).")
    train_seeds: tuple[int, ...] = Field((), description="More finetunes of the base pool with the finetune "
                                         "node's recipe and these seeds, besides its own.")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig))}


def shots_for(item: dict[str, Any], pool: list[dict[str, Any]], n: int, seed: int | str) -> list[dict[str, Any]]:
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


def draw_seed(seed: int, draw: int) -> int | str:
    return seed if draw == 0 else f"{seed}.{draw}"


def _matrix(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    """(runs, items) of a per-item column: a list per row (one entry per draw or finetune), or one value."""
    return np.array([r[key] if isinstance(r[key], list) else [r[key]] for r in rows], dtype=bool).T


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the per-item rows (each evaluation item's success zero-shot, under each draw
    of shots and after each finetune): success few-shot, its gain over zero-shot, the finetunes' gain
    over it (draws and finetunes resampled within each, entity clusters once for both)."""
    from pipeline.attribution.estimates import arm_gain, arm_success

    cfg = Config(**config)
    rows = items["eval"]
    entities = [r["entity"] for r in rows]
    col = {k: _matrix(rows, k) for k in ("success_zero_shot", "success_few_shot", "success_finetuned")}
    kw = {"level": cfg.level, "seed": cfg.seed}
    return {"success_few_shot": arm_success(col["success_few_shot"], entities, **kw),
            "few_shot_gain": arm_gain(col["success_few_shot"], col["success_zero_shot"], entities, **kw),
            "finetune_gain_over_few_shot": arm_gain(col["success_finetuned"], col["success_few_shot"], entities, **kw),
            "success_finetuned": arm_success(col["success_finetuned"], entities, **kw)}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.estimates import mde
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.runs import Job, finetune_jobs
    from pipeline.attribution.study import Study, lora_spec
    from pipeline.attribution.trainer import evaluate
    from pipeline.models import load

    cfg = Config(**config)
    examples = ctx.upstream("pool").json("examples")
    finetuned = {r["id"]: r for r in ctx.upstream("finetune").items("eval")}
    items = [e for e in examples if e["split"] == "eval"]
    if sorted(finetuned) != sorted(e["id"] for e in items):
        raise ValueError("the finetune node's rows are not this pool's evaluation items")
    base = [e for e in examples if e["split"] == "base"]
    draws = [{e["id"]: shots_for(e, base, cfg.n_shots, draw_seed(cfg.seed, d)) for e in items}
             for d in range(cfg.n_shot_draws)]
    study = Study.open(ctx, cfg) if cfg.train_seeds else None
    lm = study.lm if study else load(cfg.profile)
    start = lora_spec(cfg).first_layer(lm.n_layers)
    scored, encoded = {}, {}
    texts = {"zero": items, **{f"few{d}": [with_shots(e, shots[e["id"]]) for e in items] for d, shots in enumerate(draws)}}
    for name, batch in texts.items():
        encoded[name] = encode(lm.tokenizer, batch)
        cache = Residuals.capture(lm, encoded[name], start, cfg.eval_batch_size, ctx.progress)
        scored[name] = evaluate(lm, cache, encoded[name], range(len(items)), cfg.eval_batch_size)
    more: list[dict[str, Any]] = []
    if study is not None:
        ev, subset = study.where("eval"), study.where("base")
        if [study.examples[i]["id"] for i in ev] != [e["id"] for e in items]:
            raise ValueError("the study's evaluation items are not this node's")
        jobs = [Job(f"seed{s}", subset, seed=s, lr=cfg.lr, epochs=cfg.epochs, init=s) for s in cfg.train_seeds]
        more = finetune_jobs(study, lora_spec(cfg), jobs, ev, ctx.checkpoint("finetunes"),
                             batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size, progress=ctx.progress,
                             desc="base-pool finetunes")
    rows = [{"id": e["id"], "entity": e["entity"], "family": e["family"],
             "success_zero_shot": int(finetuned[e["id"]]["success_zero_shot"]),
             "success_few_shot": [int(scored[f"few{d}"].success[i]) for d in range(cfg.n_shot_draws)],
             "success_finetuned": [int(finetuned[e["id"]]["success"]), *(int(m["success"][i]) for m in more)],
             "shots": [[s["id"] for s in shots[e["id"]]] for shots in draws]} for i, e in enumerate(items)]
    ctx.save_items("eval", rows)
    agree = sum(int(scored["zero"].success[i]) == r["success_zero_shot"] for i, r in enumerate(rows))
    n_prompt = [n for d in range(cfg.n_shot_draws) for n in encoded[f"few{d}"].n_prompt]  # <bos> and the shots included
    estimates = recompute(ctx.item_rows, config)
    few = np.mean([scored[f"few{d}"].success for d in range(cfg.n_shot_draws)], axis=0)
    tuned = np.mean([r["success_finetuned"] for r in rows], axis=1)
    return Result(estimates=estimates, values={
        "finetune_gain_mde": mde(estimates["finetune_gain_over_few_shot"]), "n_shots": cfg.n_shots,
        "n_shot_draws": cfg.n_shot_draws, "n_finetunes": 1 + len(cfg.train_seeds), "n_eval": len(items),
        "zero_shot_agreement": agree, "zero_shot_success_here": round(float(scored["zero"].success.mean()), 4),
        "few_shot_success_by_draw": [round(float(scored[f"few{d}"].success.mean()), 4) for d in range(cfg.n_shot_draws)],
        "finetuned_success_by_seed": [round(float(np.mean([r["success_finetuned"][j] for r in rows])), 4)
                                      for j in range(1 + len(cfg.train_seeds))],
        "nll_few_shot": round(float(np.mean([scored[f"few{d}"].nll.mean() for d in range(cfg.n_shot_draws)])), 4),
        "few_shot_by_family": family_means(items, few),
        "finetuned_by_family": family_means(items, tuned),
        "prompt_tokens_mean": round(float(np.mean(n_prompt)), 1), "prompt_tokens_max": int(max(n_prompt))})


def family_means(items: list[dict[str, Any]], success: np.ndarray) -> dict[str, float]:
    """Mean success per family (success: per item, a rate over draws or finetunes)."""
    families = sorted({e["family"] for e in items})
    return {f: round(float(np.mean([s for e, s in zip(items, success, strict=True) if e["family"] == f])), 4)
            for f in families}
