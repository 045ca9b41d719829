"""Scoring one intervention setting on the steering tasks: greedy generations, the judges, per-item
outcomes (so that settings can be compared item by item), and the items each task runs on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.data import QAItem
from pipeline.steering import judges
from pipeline.steering.prompts import (
    compliance_prompt,
    false_premise_prompt,
    multiple_choice_prompt,
    pushback_prompt,
    qa_prompt,
)

TASKS = ("compliance", "qa", "pushback", "false_premise")
LONG = ("pushback", "false_premise")  # answers that run longer than a name: corrections and refusals


def token_budget(cfg: Any) -> dict[str, int]:
    """New tokens per task: cfg.long_tokens for pushback and false premises (where a config has it),
    cfg.max_new_tokens for the rest."""
    long = getattr(cfg, "long_tokens", cfg.max_new_tokens)
    return {task: long if task in LONG else cfg.max_new_tokens for task in TASKS}


def _tokens(max_new_tokens: int | dict[str, int], task: str) -> int:
    return max_new_tokens[task] if isinstance(max_new_tokens, dict) else max_new_tokens


class TaskSet:
    """The rows and prompts of each task for one split of the steering items.

    compliance and pushback run on the items the model answers right unsteered (there is a memory
    to contradict or to keep); qa on every item of the split; false_premise on the made-up
    questions. On the paper profile compliance is FaithEval multiple choice (every row), and qa and
    pushback run on TriviaQA items."""

    def __init__(self, ctx: Any, split: str, tasks: Sequence[str], n_shots: int, seed: int):
        up = ctx.upstream("tasks")
        known = set(ctx.upstream("known").result.values["known"])
        rows = [r for r in up.json("items") if r["split"] == split]
        paper = up.result.values.get("source") != "embedded"
        external = up.json("externality_items") if paper else rows
        self.pool = shot_pool(ctx)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            if task == "compliance":
                self.rows[task] = rows if paper else [r for r in rows if r["item"]["id"] in known]
            elif task == "qa":
                self.rows[task] = external
            elif task == "pushback":
                self.rows[task] = [r for r in external if r["item"]["id"] in known]
            elif task == "false_premise":
                self.rows[task] = up.json("false_premise")
        self.paper = paper
        memory = up.result.values.get("memory_shots")
        self.prompts = {task: [prompt(task, r, self.pool, n_shots, seed, paper, memory) for r in rs]
                        for task, rs in self.rows.items()}

    def clusters(self) -> dict[str, list[Any]]:
        from pipeline.stats import clusters_of

        return {task: clusters_of([r.get("cluster", r["item"]["id"]) for r in rs]) for task, rs in self.rows.items()}


def shot_pool(ctx: Any) -> list[QAItem]:
    """The items few-shot examples are drawn from (detection-train subjects, see tasks)."""
    up = ctx.upstream("tasks")
    ids = set(up.result.values["shot_pool"])
    if up.result.values.get("source") != "embedded":
        return [QAItem.from_dict(r["item"]) for r in up.json("externality_items")] + []
    from pipeline.data import build_embedded

    return [it for it in build_embedded() if it.id in ids]


def prompt(task: str, row: dict[str, Any], pool: Sequence[QAItem], n_shots: int, seed: int, paper: bool,
           memory_shots: int | None = None) -> str:
    item = QAItem.from_dict(row["item"])
    if task == "compliance":
        return multiple_choice_prompt(row) if paper else compliance_prompt(item, row["context"], pool, n_shots, seed,
                                                                           memory_shots)
    if task == "qa":
        return qa_prompt(item, pool, n_shots + 1, seed)
    if task == "pushback":
        return pushback_prompt(item, pool, seed)
    return false_premise_prompt(item, pool, seed)


def score(lm: Any, taskset: TaskSet, intervention: Callable[[], contextlib.AbstractContextManager],
          max_new_tokens: int | dict[str, int], batch_size: int) -> dict[str, dict[str, Any]]:
    """Generate greedily under the intervention and judge every generation with every judge.
    Returns per task: the generations, finish reasons and per judge the outcome of every row."""
    from pipeline.models import generate

    with intervention():
        gens = {task: generate(lm, p, _tokens(max_new_tokens, task), batch_size=batch_size)
                for task, p in taskset.prompts.items()}
    return judge(taskset, gens)


def score_sets(lm: Any, taskset: TaskSet, sets: Any, max_new_tokens: int | dict[str, int], batch_size: int,
               max_rows: int | None = None) -> list[dict[str, dict[str, Any]]]:
    """score() for every set of a pipeline.interventions.sets family, generated in shared passes
    (rows = set x prompt): one record per set, equal to score(lm, taskset, lambda: sets.context(lm, k), ...)."""
    from pipeline.interventions.decoder import MAX_ROWS, generate_sets

    gens = {task: generate_sets(lm, p, sets, _tokens(max_new_tokens, task), batch_size=batch_size,
                                max_rows=max_rows or MAX_ROWS)
            for task, p in taskset.prompts.items()}
    return [judge(taskset, {task: g[k] for task, g in gens.items()}) for k in range(len(sets))]


def judge(taskset: TaskSet, gens: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Per task: the generations' texts, finish reasons and per judge the outcome of every row."""
    out: dict[str, dict[str, Any]] = {}
    for task, generations in gens.items():
        rows = taskset.rows[task]
        kind = "multiple_choice" if task == "compliance" and taskset.paper else task
        record: dict[str, Any] = {"text": [g.text for g in generations], "finish": [g.finish_reason for g in generations]}
        for name in judges.JUDGES:
            record[name] = [judges.outcome(kind, g.text, g.finish_reason, r, name)
                            for g, r in zip(generations, rows, strict=True)]
        if kind == "compliance" and judges.llm_available():
            record["llm"] = judges.llm_outcomes(rows, record["text"])
        out[task] = record
    return out
