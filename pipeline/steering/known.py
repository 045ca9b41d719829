"""Which steering items the model knows: the plain few-shot question, unsteered, greedy, judged
strictly. Compliance and pushback are measured on these items only, so that a context has a memory
to contradict and "Are you sure?" has a correct answer to give up. (On the paper profile every
FaithEval row counts: it has no memory answer to check, and TriviaQA rows are judged the same way.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline import stats
from pipeline.steering.config import TasksConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": ("pipeline.steering.tasks", Config(**config).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import QAItem
    from pipeline.models import generate, load
    from pipeline.steering.evaluate import shot_pool
    from pipeline.steering.judges import outcome
    from pipeline.steering.prompts import qa_prompt

    cfg = Config(**config)
    up = ctx.upstream("tasks")
    paper = up.result.values.get("source") != "embedded"
    rows = up.json("externality_items") if paper else up.json("items")
    pool = shot_pool(ctx)
    lm = load(cfg.profile)
    prompts = [qa_prompt(QAItem.from_dict(r["item"]), pool, cfg.n_shots + 1, cfg.seed) for r in rows]
    ctx.record(generation={"do_sample": False, "max_new_tokens": cfg.max_new_tokens, "task": "qa",
                           "n_shots": cfg.n_shots + 1, "model": lm.model_id})
    gens = generate(lm, prompts, cfg.max_new_tokens, batch_size=cfg.batch_size, progress=ctx.progress)
    outcomes = [outcome("qa", g.text, g.finish_reason, r, "strict") for g, r in zip(gens, rows, strict=True)]
    known = [r["item"]["id"] for r, o in zip(rows, outcomes, strict=True) if o == "correct"]
    if paper:
        known += [r["item"]["id"] for r in up.json("items")]
    by_family: dict[str, Counter] = {}
    for r, o in zip(rows, outcomes, strict=True):
        by_family.setdefault(r["item"]["family"], Counter())[str(o)] += 1
    return Result(
        estimates={"known_rate": stats.proportion(sum(o == "correct" for o in outcomes), len(rows), unit="items")},
        values={"known": known, "n_known": len(known), "n_items": len(rows),
                "n_known_eval": sum(1 for r, o in zip(rows, outcomes, strict=True)
                                    if o == "correct" and r["split"] == "eval"),
                "n_known_select": sum(1 for r, o in zip(rows, outcomes, strict=True)
                                      if o == "correct" and r["split"] == "select"),
                "by_family": {f: dict(c) for f, c in sorted(by_family.items())}},
    )
