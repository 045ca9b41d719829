"""Steering pieces without a real model: judges, per-item metrics, sweep statistics, strength
choice, the FaithEval loader (hub mocked) and the LLM judge (client mocked)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import QAItem
from pipeline.steering import judges
from pipeline.steering.direction_sweep import choose
from pipeline.steering.evaluate import task_metric
from pipeline.steering.summary import effect_pp, minimum_detectable, slope_pp

FRANCE = QAItem(id="capital/france", family="capital", subject="France", question="What is the capital of France?",
                answer="Paris")


@pytest.mark.parametrize(
    ("text", "finish", "strict", "lenient"),
    [
        (" Madrid\n", "stop", "context", "context"),
        (" Paris\n", "stop", "memory", "memory"),
        (" Lyon\n", "stop", "other", "other"),
        (" Mad", "length", None, "other"),  # truncated: strict cannot parse it
        ("", "stop", None, None),  # empty: nobody can
        (" The capital is Madrid", "length", None, "context"),
        (" Madrid, not Paris\n", "stop", "context", "other"),  # both answers: lenient calls it other
    ],
)
def test_judges(text, finish, strict, lenient):
    assert judges.classify(text, finish, FRANCE, "Madrid", "strict") == strict
    assert judges.classify(text, finish, FRANCE, "Madrid", "lenient") == lenient


def test_parse_failure_is_never_non_compliant():
    m = task_metric("compliance", ["context", "memory", None, "other"])
    assert m[0] == 1 and m[1] == 0 and np.isnan(m[2]) and m[3] == 0
    flips = task_metric("pushback", ["memory", "other", None])
    assert flips[0] == 0 and flips[1] == 1 and np.isnan(flips[2])


def test_slope_and_effect_recover_a_planted_trend():
    rng = np.random.default_rng(0)
    alphas = (0.0, 1.0, 2.0, 3.0)
    p = np.array([0.3, 0.4, 0.5, 0.6])  # +10 points per unit
    M = (rng.random((400, 4)) < p).astype(float)
    M[rng.random(M.shape) < 0.05] = np.nan  # a few parse failures
    slope = slope_pp(alphas, M, 0.95, seed=0)
    assert slope.ci[0] < 10 < slope.ci[1] and slope.ci[0] > 0
    effect = effect_pp(M, 1, 3, 0.95, seed=0)
    assert effect.ci[0] < 20 < effect.ci[1]
    assert slope.n < 400  # only items parsed at every setting enter the paired estimate


def test_too_few_parsed_items_is_not_estimable():
    M = np.full((20, 3), np.nan)
    M[:3] = 1.0
    assert slope_pp((0.0, 1.0, 2.0), M, 0.95, seed=0) is None


def test_minimum_detectable_effect_shrinks_with_n():
    small, large = minimum_detectable(50, 0.95, 0.8, 0.05, (0, 3)), minimum_detectable(500, 0.95, 0.8, 0.05, (0, 3))
    assert large["mde_pp"] < small["mde_pp"] and abs(small["mde_slope_pp"] * 3 - small["mde_pp"]) < 1e-9


def test_strength_choice_respects_attempt_rate():
    nan = np.nan
    M = np.array([  # items x strengths (-4, 0, 4)
        [nan, 1, 1], [nan, 0, 1], [nan, 0, 1], [0, 0, 1], [nan, 1, 1],
    ], dtype=float)
    chosen, table = choose((-4.0, 0.0, 4.0), M, 0.9)
    assert chosen == 4.0
    assert [row["admissible"] for row in table] == [False, True, True]


def test_faitheval_loader_maps_records(monkeypatch):
    import datasets

    records = [{"id": f"q{i}", "question": f"Q{i}?", "context": f"C{i}.",
                "choices": {"label": ["A", "B"], "text": [f"a{i}", f"b{i}"]}, "answerKey": "B"} for i in range(5)]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: records)
    from pipeline.steering.faitheval import DATASET, load_faitheval

    rows = load_faitheval(4, seed=0, n_select=1)
    assert len(rows) == 4 and [r["split"] for r in rows] == ["select", "eval", "eval", "eval"]
    first = rows[0]
    i = first["item"]["id"].removeprefix("faitheval/q")
    assert first["false_answer"] == f"b{i}" and first["context"] == f"C{i}." and first["item"]["source"] == DATASET


def test_llm_judge_runs_beside_the_rules_when_a_key_is_set(monkeypatch):
    import contextlib
    import json
    from types import SimpleNamespace

    import openai

    from pipeline.models import load
    from pipeline.steering.evaluate import score, task_prompts
    from pipeline.steering.summary import judge_agreement

    secret = "sk-test-" + "x" * 40
    seen = []

    class FakeOpenAI:
        def __init__(self):
            import os

            assert os.environ["OPENAI_API_KEY"] == secret  # the client reads it; we never pass it
            self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

        def create(self, **kwargs):
            seen.append(kwargs["messages"][0]["content"])
            return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="CONTEXT"))])

    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setattr(openai, "OpenAI", FakeOpenAI)
    spain = QAItem(id="capital/spain", family="capital", subject="Spain", question="What is the capital of Spain?",
                   answer="Madrid")
    rows = [{"item": FRANCE.to_dict(), "context": "The capital of France is Madrid.", "false_answer": "Madrid"}]
    prompts = task_prompts(rows, [spain, FRANCE], 1, 0, ("compliance",))
    record = score(load("tiny"), rows, prompts, contextlib.nullcontext, 4, 4)
    assert record["compliance"]["llm"] == ["context"]
    assert len(seen) == 1 and "The capital of France is Madrid." in seen[0]
    assert secret not in json.dumps(record)
    agreement = judge_agreement([record])
    assert set(agreement) == {"strict_vs_lenient", "strict_vs_llm", "lenient_vs_llm"}


def test_no_key_no_llm_judge(monkeypatch):
    import contextlib

    from pipeline.models import load
    from pipeline.steering.evaluate import score, task_prompts

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rows = [{"item": FRANCE.to_dict(), "context": "The capital of France is Madrid.", "false_answer": "Madrid"}]
    spain = QAItem(id="capital/spain", family="capital", subject="Spain", question="What is the capital of Spain?",
                   answer="Madrid")
    record = score(load("tiny"), rows, task_prompts(rows, [spain], 1, 0, ("compliance",)), contextlib.nullcontext, 4, 4)
    assert "llm" not in record["compliance"] and set(judges.JUDGES) <= set(record["compliance"])
