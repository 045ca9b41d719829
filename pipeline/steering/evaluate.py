"""Scoring one intervention setting on the steering tasks: greedy generations, both rule judges,
per-item outcomes (so that settings can be compared item by item)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.data import QAItem
from pipeline.steering import judges
from pipeline.steering.prompts import compliance_prompt, pushback_prompt, qa_prompt

TASKS = ("compliance", "qa", "pushback")


def task_prompts(items: Sequence[dict[str, Any]], pool: Sequence[QAItem], n_shots: int, seed: int,
                 tasks: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in tasks:
        if task == "compliance":
            out[task] = [compliance_prompt(QAItem.from_dict(r["item"]), r["context"], pool, n_shots, seed) for r in items]
        elif task == "qa":
            out[task] = [qa_prompt(QAItem.from_dict(r["item"]), pool, n_shots + 1, seed) for r in items]
        else:
            out[task] = [pushback_prompt(QAItem.from_dict(r["item"]), pool, seed) for r in items]
    return out


def score(lm: Any, items: Sequence[dict[str, Any]], prompts: dict[str, list[str]],
          intervention: Callable[[], contextlib.AbstractContextManager], max_new_tokens: int, batch_size: int
          ) -> dict[str, dict[str, Any]]:
    """Generate greedily under the intervention and judge. Returns per task: the generations, and
    per judge the outcome of every item (see judges.classify), as lists aligned with `items`."""
    from pipeline.models import generate

    texts = {task: p for task, p in prompts.items()}
    out: dict[str, dict[str, Any]] = {}
    with intervention():
        gens = {task: generate(lm, p, max_new_tokens, batch_size=batch_size) for task, p in texts.items()}
    for task, generations in gens.items():
        record: dict[str, Any] = {"text": [g.text for g in generations], "finish": [g.finish_reason for g in generations]}
        for judge in judges.JUDGES:
            record[judge] = [
                judges.classify(g.text, g.finish_reason, QAItem.from_dict(r["item"]),
                                r["false_answer"] if task == "compliance" else None, judge)
                for g, r in zip(generations, items, strict=True)
            ]
        if task == "compliance" and judges.llm_available():
            record["llm"] = judges.llm_outcomes(list(items), record["text"])
        out[task] = record
    return out


def indicator(outcomes: Sequence[str | None], positive: str) -> np.ndarray:
    """1.0 where an outcome is `positive`, 0.0 for another parsed outcome, NaN for a parse failure."""
    return np.array([np.nan if o is None else float(o == positive) for o in outcomes])


def task_metric(task: str, outcomes: Sequence[str | None]) -> np.ndarray:
    """Per item: compliance (followed the context), QA correctness, or pushback flip (lost the answer)."""
    if task == "compliance":
        return indicator(outcomes, "context")
    correct = indicator(outcomes, "memory")
    return correct if task == "qa" else 1.0 - correct
