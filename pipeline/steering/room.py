"""The task with room (issue 20): which compliance design puts the unsteered model near the middle.

With true-context shots the embedded model follows a false context on about 92 % of the items it
knows, which leaves no room for an intervention to raise compliance. With `memory_shots` = m every
shot states a false context and m of them answer from memory, the rest follow the context
(pipeline/steering/prompts.py): the shots are evidence both ways. This node measures the unsteered
model's compliance at every m on the **selection** split only (greedy, the strict and the lenient
judge, the share of answers cut off by the token limit; compliance over all items, as the rule
reads it, and over the items answered with the context or the memory answer, as the steering
claims read it, with the other answers beside them) and applies the rule fixed before any
result: among the levels whose strict compliance lies in [low, high], the one nearest 0.5; none if
no level does. The evaluation split, on which every steering claim is measured, is not read here.
Per-item outcomes are committed (`outcomes`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.steering.config import TasksConfig


class Config(TasksConfig):
    levels: tuple[int, ...] = Field((0, 1, 2, 3), min_length=1, description="memory_shots values tried.")
    low: float = Field(0.35, ge=0, le=1, description="Lowest unsteered compliance a chosen level may have.")
    high: float = Field(0.65, ge=0, le=1, description="Highest unsteered compliance a chosen level may have.")
    level: float = Field(0.95, gt=0, lt=1)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    base = cfg.upstream(TasksConfig) | {"memory_shots": None}
    return {"tasks": ("pipeline.steering.tasks", base), "known": ("pipeline.steering.known", base)}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def choose(rates: dict[int, float], low: float, high: float) -> int | None:
    """The rule fixed before the run: the level with rate in [low, high] nearest 0.5 (ties: fewer
    memory shots), or None."""
    inside = [m for m in sorted(rates) if low <= rates[m] <= high]
    return min(inside, key=lambda m: (abs(rates[m] - 0.5), m)) if inside else None


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    rows = items["outcomes"]
    out = {}
    for m in cfg.levels:
        part = [r for r in rows if r["memory_shots"] == m]
        for judge in ("strict", "lenient"):
            out[f"compliance_{judge}_m{m}"] = stats.proportion(sum(r[judge] == "context" for r in part), len(part),
                                                              cfg.level, unit="selection items")
        parsed = [r for r in part if r["strict"] in ("context", "memory")]
        out[f"compliance_parsed_m{m}"] = stats.proportion(sum(r["strict"] == "context" for r in parsed), len(parsed),
                                                         cfg.level, unit="selection items answered context or memory")
        out[f"other_m{m}"] = stats.proportion(sum(r["strict"] not in ("context", "memory") for r in part), len(part),
                                              cfg.level, unit="selection items")
        out[f"cut_off_m{m}"] = stats.proportion(sum(r["finish"] == "length" for r in part), len(part), cfg.level,
                                                unit="selection items")
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import QAItem
    from pipeline.models import generate, load
    from pipeline.steering.evaluate import shot_pool
    from pipeline.steering.judges import outcome
    from pipeline.steering.prompts import compliance_prompt

    cfg = Config(**config)
    if cfg.profile == "paper":
        raise ValueError("pipeline.steering.room calibrates the embedded compliance task (the paper profile's "
                         "FaithEval rows carry their own contexts)")
    known = set(ctx.upstream("known").result.values["known"])
    rows = [r for r in ctx.upstream("tasks").json("items") if r["split"] == "select" and r["item"]["id"] in known]
    pool = shot_pool(ctx)
    lm = load(cfg.profile)
    ctx.record(generation={"do_sample": False, "max_new_tokens": cfg.max_new_tokens, "task": "compliance",
                           "n_shots": cfg.n_shots, "levels": list(cfg.levels), "model": lm.model_id})
    ckpt = ctx.checkpoint("levels")
    for m in ctx.progress(cfg.levels, total=len(cfg.levels), desc="compliance by memory shots"):
        if m in ckpt:
            continue
        prompts = [compliance_prompt(QAItem.from_dict(r["item"]), r["context"], pool, cfg.n_shots, cfg.seed, m)
                   for r in rows]
        gens = generate(lm, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size)
        ckpt[m] = [{"id": r["item"]["id"], "family": r["item"]["family"], "memory_shots": m, "text": g.text,
                    "finish": g.finish_reason, "strict": outcome("compliance", g.text, g.finish_reason, r, "strict"),
                    "lenient": outcome("compliance", g.text, g.finish_reason, r, "lenient")}
                   for r, g in zip(rows, gens, strict=True)]
    outcomes = [o for m in cfg.levels for o in ckpt[m]]
    ctx.save_items("outcomes", outcomes)
    estimates = recompute({"outcomes": outcomes}, config)
    rates = {m: estimates[f"compliance_strict_m{m}"].value for m in cfg.levels}
    chosen = choose(rates, cfg.low, cfg.high)
    if chosen is not None:  # the chosen design's unsteered rate, the baseline every steering null starts from
        estimates["chosen_rate"] = estimates[f"compliance_strict_m{chosen}"]
        # the steering claims' definition: context / (context + memory); other answers reported beside
        estimates["chosen_rate_parsed"] = estimates[f"compliance_parsed_m{chosen}"]
        estimates["chosen_other"] = estimates[f"other_m{chosen}"]
    by_family = {str(m): dict(sorted(Counter(f"{o['family']}:{o['strict']}" for o in outcomes
                                             if o["memory_shots"] == m).items())) for m in cfg.levels}
    return Result(estimates=estimates, values={
        "n_items": len(rows), "rates_strict": {str(m): rates[m] for m in cfg.levels}, "chosen": chosen,
        "rule": f"the level with strict compliance in [{cfg.low}, {cfg.high}] nearest 0.5", "split": "select",
        "by_family": by_family})
