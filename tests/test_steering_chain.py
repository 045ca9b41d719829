"""The steering study end to end on the tiny model, through the engine's runner: the items the model
knows, the H-neuron sweep against matched random neurons, DiffMean and ITI chosen under the QA
constraint against KL-matched random directions, the comparison table and the judge audit; and the
paper profile's chain on FaithEval-shaped rows (options shown, the letter parsed) with TriviaQA
externalities, hub mocked."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from claims.experiment import make_node
from claims.project import Project
from claims.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
DETECTION = {"k": 3, "max_new_tokens": 4, "split_seeds": [0, 1], "forward_batch_size": 8, "cv_folds": 2, "n_jobs": 1,
             "Cs": [0.3, 1.0, 3.0], "l2_Cs": [0.1, 1.0]}
STEERING = {"n_select": 12, "n_eval": 24, "n_false_premise": 2, "max_new_tokens": 4, "batch_size": 8}


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def planted_generate(items):
    """A stand-in for greedy/sampled generation that answers from the prompt's last question."""
    from pipeline.models import Generation

    by_question = {it.question: it for it in items}

    def answer(prompt: str) -> str:
        if prompt.rstrip().endswith("Answer:"):  # FaithEval multiple choice
            return " B" if _h(prompt) % 2 else " A"
        question = prompt.rsplit("Q: ", 1)[1].split("\n", 1)[0]
        if question == "Are you sure?":
            question = prompt.rsplit("Q: ", 2)[1].split("\n", 1)[0]
        item = by_question.get(question)
        if item is None:  # a false premise
            return " There is no such thing." if _h(question) % 2 else " Zanzibar"
        context = re.search(r"Context: (.*)\nQ: " + re.escape(question), prompt)
        if context and _h(prompt) % 3 == 0:
            return " " + context.group(1).rsplit(" ", 1)[1].rstrip(".")  # follows the context
        return f" {item.answer}" if _h(item.id) % 4 else " Atlantis"

    def generate(lm, prompts, max_new_tokens, *, do_sample=False, num_samples=1, **kwargs):
        return [Generation(text=answer(p) + "\n", token_ids=(1,), finish_reason="stop", prompt_index=i, sample_index=s)
                for i, p in enumerate(prompts) for s in range(num_samples)]

    return generate


@pytest.fixture
def project(tmp_path, monkeypatch):
    import pipeline.models
    from pipeline.data import build_embedded
    from pipeline.data.falsepremise import false_premise_items
    from pipeline.hneurons import questions

    families = ("capital", "element_symbol", "city_country", "currency", "state_capital")
    items = [it for f in families for it in [i for i in build_embedded() if i.family == f][:30]]
    monkeypatch.setattr(questions, "load_items", lambda profile, max_questions, seed: items)
    every = build_embedded() + false_premise_items(2, 42)
    monkeypatch.setattr(pipeline.models, "generate", planted_generate(every))
    monkeypatch.setenv("OPENAI_API_KEY", "")
    project = replace(Project.at(ROOT), artifacts_dir=tmp_path / "artifacts", build_dir=tmp_path / "build")
    project.activate()
    return project


def run(project, experiment, **config):
    import importlib

    fields = importlib.import_module(experiment).Config.model_fields
    chosen = {k: v for k, v in {**DETECTION, **STEERING, **config}.items() if k in fields}
    return Runner(project).ensure(make_node(experiment, chosen, "test")).result


def detection_settings(monkeypatch):
    """The steering nodes read the detection probe through config.detection(): shrink it for tests."""
    import importlib

    from pipeline.hneurons.config import ProbeConfig

    def small(profile, seed):
        return ProbeConfig(profile=profile, seed=seed, **DETECTION)

    for module in ("config", "tasks", "neurons", "neurons_random", "directions", "direction_random", "comparison"):
        mod = importlib.import_module(f"pipeline.steering.{module}")
        if hasattr(mod, "detection"):
            monkeypatch.setattr(mod, "detection", small)


def test_the_steering_chain_runs_on_the_tiny_model(project, monkeypatch):
    detection_settings(monkeypatch)
    common = {"profile": "tiny", "families": ["capital", "element_symbol", "city_country", "currency"]}
    known = run(project, "pipeline.steering.known", **common)
    assert 0 < known.values["n_known"] < known.values["n_items"]
    neurons = run(project, "pipeline.steering.neurons", **common)
    assert neurons.values["n_items"]["compliance"] == known.values["n_known_eval"]
    assert {"compliance_effect_pp", "qa_rate_neutral", "false_premise_rate_neutral"} <= set(neurons.estimates)
    assert set(neurons.values["cut_off"]) == {"compliance", "qa", "pushback", "false_premise"}
    rand = run(project, "pipeline.steering.neurons_random", **common, seeds=3)
    assert len(rand.values["seed_slopes_pp"]) == 3 and 0 < rand.values["rank_p"] <= 1
    # matched on KL too: 3 of 6 layer- and activity-matched candidates kept, the balance reported
    matched = run(project, "pipeline.steering.neurons_random", **common, seeds=3, candidates=6, n_calibration=2,
                  tasks=["compliance", "pushback"])
    assert len(matched.values["kl"]["kept"]) == 3 and len(matched.values["kl"]["candidates"]) == 6
    assert set(matched.values["balance"]) == {"layer", "activity", "kl"} and matched.values["balance"]["layer"] == 0
    assert 0 < matched.values["pushback_rank_p"] <= 1 and "pushback_slope_pp" in matched.estimates
    for method in ("diffmean", "iti"):
        sweep = run(project, "pipeline.steering.direction_sweep", **common, method=method, layers=[0, 1],
                    alphas=[-2.0, 2.0])
        assert any(row["admissible"] for row in sweep.values["selection"])
        control = run(project, "pipeline.steering.direction_random", **common, method=method, layers=[0, 1],
                      alphas=[-2.0, 2.0], seeds=2, n_calibration=2, sigma=method == "iti")
        assert len(control.values["multipliers"]) == 2 and control.values["target_kl"] > 0
        # the second size only when asked (it doubles the control's generations)
        assert 0 < control.values["rank_p_kl"] <= 1 and ("seed_effects_pp_sigma" in control.values) == (method == "iti")
        assert len(control.values["kl_reached"]) == 2 and "kl" in control.values["balance"]
        assert sweep.values["cut_off"]["false_premise"] == 0  # the planted answers end with a newline


def test_paper_profile_on_faitheval_shaped_rows(project, monkeypatch):
    import datasets

    import pipeline.models
    from pipeline.data import QAItem
    from pipeline.models import tiny

    records = [{"id": f"q{i}", "question": f"Which gas do plants take in, case {i}?", "context": f"Plants take in gas B{i}.",
                "choices": {"label": ["A", "B", "C"], "text": [f"oxygen {i}", f"neon {i}", f"argon {i}"]},
                "answerKey": "B"} for i in range(30)]
    trivia = [QAItem(id=f"triviaqa/t{i}", family="triviaqa", subject=f"Who wrote book {i}?",
                     question=f"Who wrote book {i}?", answer=f"Author {i}") for i in range(60)]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: records)
    monkeypatch.setattr("pipeline.data.load_triviaqa", lambda split="validation", n=None: trivia[:n])
    monkeypatch.setitem(pipeline.models.PROFILES, "paper", (tiny.load, tiny.fingerprint))
    monkeypatch.setattr(pipeline.models, "generate", planted_generate(trivia))
    from pipeline.steering.prompts import multiple_choice_prompt

    tasks = run(project, "pipeline.steering.tasks", profile="paper")
    assert tasks.values["source"] == "FaithEval + TriviaQA"
    runner = Runner(project)
    rows = json.loads(runner.store.verified_blob(tasks.files["items"]).read_text())
    prompt = multiple_choice_prompt(rows[0])
    assert "A. oxygen" in prompt and "B. neon" in prompt and prompt.endswith("Answer:")
    known = run(project, "pipeline.steering.known", profile="paper")
    assert known.values["n_known"] >= len(rows)
    from pipeline.steering import evaluate

    class Ctx:
        def upstream(self, name):
            node = {"tasks": ("pipeline.steering.tasks", {"profile": "paper", **STEERING}),
                    "known": ("pipeline.steering.known", {"profile": "paper", **STEERING})}[name]
            state = runner.assess(make_node(*node, "test"))
            from claims.context import Upstream

            return Upstream(name, state.node, state.result, runner.store)

    taskset = evaluate.TaskSet(Ctx(), "eval", evaluate.TASKS, 1, 42)
    assert taskset.paper and taskset.rows["qa"][0]["item"]["family"] == "triviaqa"
    record = evaluate.score(pipeline.models.load("paper"), taskset, lambda: __import__("contextlib").nullcontext(), 4, 8)
    assert set(record["compliance"]["strict"]) <= {"context", "other"}
    assert record["qa"]["strict"][0] in ("correct", "wrong")


def test_the_task_with_room_is_calibrated_on_the_selection_split(project, monkeypatch):
    detection_settings(monkeypatch)
    common = {"profile": "tiny", "families": ["capital", "element_symbol", "city_country", "currency"]}
    room = run(project, "pipeline.steering.room", **common, levels=[0, 3])
    known = run(project, "pipeline.steering.known", **common)
    assert room.values["split"] == "select" and room.values["n_items"] == known.values["n_known_select"]
    rates = room.values["rates_strict"]
    assert set(rates) == {"0", "3"} and all(0 <= r <= 1 for r in rates.values())
    chosen = room.values["chosen"]
    assert chosen is None or 0.35 <= rates[str(chosen)] <= 0.65
    assert room.estimates["cut_off_m0"].value == 0  # the planted answers end with a newline
    assert 0 <= room.estimates["other_m0"].value <= 1 and "compliance_parsed_m3" in room.estimates
    tasks = run(project, "pipeline.steering.tasks", **common, memory_shots=2)
    assert tasks.values["memory_shots"] == 2
