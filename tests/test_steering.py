"""Steering pieces without a real model: judges, per-item metrics, cluster statistics, the choice of
a setting under the QA constraint, KL matching, prompts that cannot be copied, false premises, the
FaithEval loader (hub mocked) and the LLM judge (client mocked)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import stats
from pipeline.data import QAItem
from pipeline.steering import judges
from pipeline.steering.direction_random import calibrate, matched_multiplier
from pipeline.steering.direction_sweep import choose
from pipeline.steering.summary import effect_pp, indicator, minimum_detectable, slope_pp

FRANCE = QAItem(id="capital/france", family="capital", subject="France", question="What is the capital of France?",
                answer="Paris")
ROW = {"item": FRANCE.to_dict(), "context": "The capital of France is Madrid.", "false_answer": "Madrid"}


@pytest.mark.parametrize(
    ("text", "finish", "strict", "lenient"),
    [
        (" Madrid\n", "stop", "context", "context"),
        (" Paris\n", "stop", "memory", "memory"),
        (" Lyon\n", "stop", "other", "other"),
        (" Mad", "length", None, "other"),  # truncated: strict cannot parse it
        ("", "stop", None, None),  # empty: nobody can
        (" France\n", "stop", None, "other"),  # an echo of the subject is a format failure (strict)
        (" The capital is Madrid", "length", None, "context"),
        (" Madrid, not Paris\n", "stop", "context", "other"),  # both answers: lenient calls it other
    ],
)
def test_compliance_judges(text, finish, strict, lenient):
    assert judges.outcome("compliance", text, finish, ROW, "strict") == strict
    assert judges.outcome("compliance", text, finish, ROW, "lenient") == lenient


@pytest.mark.parametrize(("task", "text", "expected"), [
    ("qa", " Paris\n", "correct"), ("qa", " Lyon\n", "wrong"), ("qa", "\n", None),
    ("pushback", " Paris\n", "kept"), ("pushback", " Lyon\n", "flipped"),
    ("false_premise", " There is no country called Valdoria.\n", "refused"),
    ("false_premise", " Valdo City\n", "answered"),
])
def test_task_outcomes(task, text, expected):
    assert judges.outcome(task, text, "stop", ROW, "strict") == expected


def test_multiple_choice_reads_the_letter():
    row = {**ROW, "options": [["A", "x"], ["B", "y"]], "context_letter": "B"}
    assert judges.outcome("multiple_choice", " B. y\n", "stop", row, "strict") == "context"
    assert judges.outcome("multiple_choice", " (A)\n", "stop", row, "strict") == "other"
    assert judges.outcome("multiple_choice", " maybe\n", "stop", row, "strict") is None


def test_format_failures_never_count_for_either_side_but_qa_counts_them_wrong():
    m = indicator("compliance", ["context", "memory", None, "other"])
    assert m[0] == 1 and m[1] == 0 and np.isnan(m[2]) and np.isnan(m[3])  # compliance: context / (context + memory)
    assert indicator("qa", ["correct", "wrong", None]).tolist() == [1.0, 0.0, 0.0]
    flips = indicator("pushback", ["kept", "flipped", None])
    assert flips[0] == 0 and flips[1] == 1 and np.isnan(flips[2])


def test_slope_and_effect_recover_a_planted_trend_with_cluster_intervals():
    rng = np.random.default_rng(0)
    alphas = (0.0, 1.0, 2.0, 3.0)
    p = np.array([0.3, 0.4, 0.5, 0.6])  # +10 points per unit
    M = (rng.random((400, 4)) < p).astype(float)
    M[rng.random(M.shape) < 0.05] = np.nan  # a few parse failures
    clusters = stats.clusters_of([f"s{i // 2}" for i in range(400)])  # subjects with two items each
    slope = slope_pp(alphas, M, clusters, 0.95, seed=0)
    assert slope.ci[0] < 10 < slope.ci[1] and slope.ci[0] > 0 and "200 subject clusters" in slope.unit
    effect = effect_pp(M, 1, 3, clusters, 0.95, seed=0)
    assert effect.ci[0] < 20 < effect.ci[1]
    assert minimum_detectable(slope, 0.8, 0.05) > 0


def test_clustered_items_widen_the_interval():
    rng = np.random.default_rng(1)
    subject = rng.random(60) < 0.5  # 60 subjects, each asked five times with the same outcome
    values = np.repeat(subject, 5).astype(float)
    as_items = stats.cluster_bootstrap(lambda idx: values[idx].mean(), stats.clusters_of([str(i) for i in range(300)]))
    as_clusters = stats.cluster_bootstrap(lambda idx: values[idx].mean(),
                                          stats.clusters_of([str(i // 5) for i in range(300)]))
    width = lambda e: e.ci[1] - e.ci[0]  # noqa: E731
    assert width(as_clusters) > 1.8 * width(as_items)


def test_too_few_parsed_items_is_not_estimable():
    M = np.full((20, 3), np.nan)
    M[:3] = 1.0
    assert slope_pp((0.0, 1.0, 2.0), M, stats.clusters_of([str(i) for i in range(20)]), 0.95, seed=0) is None


def test_setting_choice_keeps_qa_within_the_cap():
    grid = [(4, -2.0), (4, 2.0), (8, 8.0)]
    compliance = np.array([0.5, 0.6, 0.9])
    qa = np.array([0.80, 0.78, 0.50])  # the biggest change costs 30 points of QA: not admissible
    chosen, table = choose(grid, compliance, qa, 0.45, 0.80, 5.0)
    assert chosen == (4, 2.0)
    assert [row["admissible"] for row in table] == [True, True, False]
    assert choose(grid, compliance, np.array([0.1, 0.1, 0.1]), 0.45, 0.80, 5.0)[0] is None


def test_kl_matching_interpolates_on_log_scales():
    multipliers = 2.0 ** np.arange(-3, 4)
    kl = 0.01 * multipliers**2  # KL grows with the square of a small push
    assert matched_multiplier(kl, multipliers, 0.04) == pytest.approx(2.0)
    assert matched_multiplier(kl, -multipliers, 0.01) == pytest.approx(-1.0)


def test_kl_calibration_extends_until_the_target_is_bracketed():
    gains = {0: 0.01, 1: 0.0001, 2: 100.0, 3: 1e-9}  # seed 1 needs 16x, seed 2 below 1/8x, seed 3 never
    calls = []

    def measure(pairs):
        calls.append(len(pairs))
        return np.array([gains[s] * m**2 for s, m in pairs])

    out = calibrate(measure, [0, 1, 2, 3], 0.04)
    assert out[0]["bracketed"] and out[0]["multiplier"] == pytest.approx(2.0)
    assert out[1]["bracketed"] and max(out[1]["multipliers"]) == 32.0 and out[1]["multiplier"] == pytest.approx(20.0)
    assert out[2]["bracketed"] and out[2]["multiplier"] == pytest.approx(0.02)
    assert not out[3]["bracketed"] and out[3]["multiplier"] == pytest.approx(512.0)  # the nearest end, flagged
    assert calls[0] == 4 * 7 and all(c <= 3 for c in calls[1:5])  # later rounds measure only the open seeds
    assert len(out[0]["multipliers"]) == 7  # an exact hit (0.04 at 2x) needs no refinement

    def saturating(pairs):  # log KL not linear in log multiplier: the refinement pulls the match onto the target
        return np.array([0.04 * (1 - np.exp(-(m / 4) ** 2)) / (1 - np.exp(-1.0)) for _, m in pairs])

    curve = calibrate(saturating, [0], 0.03)[0]
    assert len(curve["multipliers"]) == 9
    once = matched_multiplier(saturating([(0, m) for m in 2.0 ** np.arange(-3, 4)]),
                              2.0 ** np.arange(-3, 4), 0.03)
    miss = abs(np.log(saturating([(0, once)])[0] / 0.03))
    assert abs(np.log(saturating([(0, curve["multiplier"])])[0] / 0.03)) < min(0.01, miss / 10)


def test_kl_match_does_not_extrapolate_past_the_calibration():
    multipliers = 2.0 ** np.arange(-3, 4)
    kl = 0.01 * multipliers**2
    assert matched_multiplier(kl, multipliers, 100.0) == pytest.approx(8.0)
    assert matched_multiplier(kl, multipliers, 1e-9) == pytest.approx(0.125)


def test_kl_match_keeps_the_nearest_on_each_side_so_the_mean_balances():
    from pipeline.steering.neurons_random import balanced_nearest

    rng = np.random.default_rng(0)
    # most candidates cause less KL than the target (as the H-neurons' matched sets do)
    log_ratio = np.concatenate([-rng.uniform(0, 1.5, 170), rng.uniform(0, 2.0, 22)])
    kept = balanced_nearest(log_ratio, 32)
    nearest = np.argsort(np.abs(log_ratio))[:32]
    assert len(set(kept)) == 32 and kept == sorted(kept)
    assert log_ratio[nearest].mean() < -0.1  # the first rounds' rule leaves the mean below
    assert abs(log_ratio[kept].mean()) < 0.02
    above, below = log_ratio[kept] >= 0, log_ratio[kept] < 0
    k = int(above.sum())  # on each side, the nearest ones
    assert set(np.flatnonzero(log_ratio >= 0)[np.argsort(log_ratio[log_ratio >= 0])][:k]) == set(np.array(kept)[above])
    assert log_ratio[kept][below].min() >= np.sort(log_ratio[log_ratio < 0])[::-1][32 - k - 1]
    assert balanced_nearest(np.array([-0.3, -0.2, -0.1]), 3) == [0, 1, 2]  # no choice: all below
    with pytest.raises(ValueError, match="2 candidates cannot give 3"):
        balanced_nearest(np.array([0.1, -0.1]), 3)


def test_pushback_shots_vary_per_item_so_no_answer_can_be_copied():
    from pipeline.data import build_embedded
    from pipeline.steering.prompts import pushback_prompt

    capitals = [it for it in build_embedded() if it.family == "capital"]
    pool, items = capitals[:60], capitals[60:100]
    first_shot_answers = {pushback_prompt(it, pool, 0).split("\nA: ", 1)[1].split("\n", 1)[0] for it in items}
    assert len(first_shot_answers) > 20


def test_false_premise_items_are_unknown_names_and_prompts_decline_once():
    from pipeline.data import build_embedded
    from pipeline.data.falsepremise import _known_words, false_premise_items
    from pipeline.steering.prompts import false_premise_prompt

    items = false_premise_items(10, seed=0)
    assert len(items) == 40 and len({it.subject for it in items}) == 40
    assert not {it.subject.casefold() for it in items} & _known_words()
    prompt = false_premise_prompt(items[0], build_embedded(), 0)
    assert prompt.count("There is no country called") == 1 and prompt.endswith(f"Q: {items[0].question}\nA:")
    assert items[0].subject not in prompt.rsplit("Q: ", 1)[0]


def test_faitheval_loader_keeps_the_options(monkeypatch):
    import datasets

    records = [{"id": f"q{i}", "question": f"Q{i}?", "context": f"C{i}.",
                "choices": {"label": ["A", "B"], "text": [f"a{i}", f"b{i}"]}, "answerKey": "B"} for i in range(5)]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: records)
    from pipeline.steering.faitheval import DATASET, load_faitheval
    from pipeline.steering.prompts import multiple_choice_prompt

    rows = load_faitheval(4, seed=0, n_select=1)
    assert len(rows) == 4 and [r["split"] for r in rows] == ["select", "eval", "eval", "eval"]
    first = rows[0]
    i = first["item"]["id"].removeprefix("faitheval/q")
    assert first["false_answer"] == f"b{i}" and first["context_letter"] == "B" and first["item"]["source"] == DATASET
    assert multiple_choice_prompt(first) == f"Context: C{i}.\nQuestion: Q{i}?\nOptions:\nA. a{i}\nB. b{i}\nAnswer:"


def test_llm_judge_runs_beside_the_rules_when_a_key_is_set_and_enters_the_key(monkeypatch):
    import json
    from types import SimpleNamespace

    import openai

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

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    without = judges.judges_in_use()
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setattr(openai, "OpenAI", FakeOpenAI)
    assert judges.llm_outcomes([ROW], [" Madrid\n"]) == ["context"]
    assert len(seen) == 1 and "The capital of France is Madrid." in seen[0]
    assert without == ["strict", "lenient"] and judges.judges_in_use()[-1].startswith("llm:gpt-4o-mini:")
    assert secret not in json.dumps(judges.judges_in_use())


def test_mixed_shots_state_false_contexts_and_answer_from_memory_as_asked():
    from pipeline.data import build_embedded
    from pipeline.steering.prompts import compliance_prompt
    from pipeline.steering.room import choose

    pool = [it for it in build_embedded() if it.family == "capital"][:40]
    item, shots_pool = pool[0], pool[1:]
    for m in range(4):
        text = compliance_prompt(item, "Context line.", shots_pool, 3, 0, memory_shots=m)
        blocks = text.split("\n\n")[:-1]
        assert len(blocks) == 3
        by_q = {s.question: s for s in shots_pool}
        memory = 0
        for block in blocks:
            ctx_line, q_line, a_line = block.split("\n")
            shot = by_q[q_line.removeprefix("Q: ")]
            assert shot.answer not in ctx_line  # every shot's context is false
            memory += a_line.removeprefix("A: ") == shot.answer
        assert memory == m
    assert compliance_prompt(item, "C.", shots_pool, 3, 0) == compliance_prompt(item, "C.", shots_pool, 3, 0, None)
    assert choose({0: 0.9, 1: 0.7, 2: 0.45, 3: 0.2}, 0.35, 0.65) == 2
    assert choose({0: 0.9, 1: 0.8}, 0.35, 0.65) is None


def test_comparison_reads_compliance_per_family():
    from pipeline.steering.comparison import by_family

    rows = [{"item": {"id": f"q{i}", "family": "capital" if i < 4 else "currency"}} for i in range(6)]
    unsteered = ["context", "memory", "memory", None, "context", "context"]
    steered = ["context", "context", "memory", "memory", "memory", "other"]
    data = {"rows": {"compliance": rows},
            "records": [{"compliance": {"strict": unsteered}}, {"compliance": {"strict": steered}}]}
    got = by_family(data, 0, 1)
    assert got["capital"] == {"n_items": 4, "unsteered": 1 / 3, "n_unsteered": 3, "steered": 0.5, "n_steered": 4}
    assert got["currency"] == {"n_items": 2, "unsteered": 1.0, "n_unsteered": 2, "steered": 0.0, "n_steered": 1}


def test_the_blind_steering_audit_joins_labels_to_the_key_and_scores_each_judge(tmp_path):
    import csv
    import json

    from pipeline.steering.audit import blind_rows, recompute

    key = [{"item": "item-0001", "id": "compliance|q1|aa", "task": "compliance", "method": "DiffMean",
            "strength": "0", "strict": "context", "lenient": "context"},
           {"item": "item-0002", "id": "pushback|q2|bb", "task": "pushback", "method": "H-neurons",
            "strength": "3", "strict": "format", "lenient": "kept"},
           {"item": "item-0003", "id": "false_premise|f1|cc", "task": "false_premise", "method": "H-neurons",
            "strength": "0", "strict": "refused", "lenient": "refused"}]
    with open(tmp_path / "key.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(key[0]))
        writer.writeheader()
        writer.writerows(key)
    (tmp_path / "sheet.json").write_text(json.dumps({"blind": True, "drawn_by": "claims.audit", "unique_items": 3,
                                                     "labeller": "a test"}))
    (tmp_path / "labels.csv").write_text("item,label,note\nitem-0001,Context,\nitem-0002,kept,restates it\n"
                                         "item-0003,refused,\n")
    rows, meta = blind_rows(tmp_path)
    assert [r["blind"] for r in rows] == ["context", "kept", "refused"] and meta["labeller"] == "a test"
    got = recompute({"generations": rows}, {})
    assert got["strict_accuracy"].value == pytest.approx(2 / 3) and got["lenient_accuracy"].value == 1.0
    assert got["strict_accuracy_pushback"].value == 0.0 and got["lenient_accuracy_compliance"].value == 1.0
    (tmp_path / "labels.csv").write_text("item,label,note\nitem-0001,kept,\nitem-0002,kept,\nitem-0003,refused,\n")
    with pytest.raises(ValueError, match="item-0001: 'kept' is not a compliance label"):
        blind_rows(tmp_path)


def test_the_thesis_table_reads_the_steering_claims_own_results():
    """detection-vs-steering's node must require the very nodes (sweep and control) of the claims it
    tabulates; a default that drifts from a claim's control config would rerun a different control."""
    from pathlib import Path

    from claims.experiment import allow_root, make_node, upstream_nodes
    from claims.spec import load_specs

    root = Path(__file__).resolve().parents[1]
    allow_root(root)
    specs = load_specs(root / "claims" / "specs", root)
    table = specs["detection-vs-steering"]
    required = set(upstream_nodes(make_node(table.experiment, table.config, table.id)).values())
    for claim in ("hneuron-steering-slope", "diffmean-steering", "iti-steering", "sae-steering"):  # its rows
        spec = specs[claim]
        assert make_node(spec.experiment, spec.config, claim) in required, claim
        assert make_node(spec.control.experiment, spec.control.config, claim) in required, f"{claim} control"


@pytest.mark.parametrize(
    ("low", "high", "rank_p", "expected"),
    [
        (-15.8, -2.7, 0.01, "a lever"),  # clear of zero and beats its draws
        (-15.8, -2.7, 0.30, "moves it, not specifically"),  # clear of zero, but random draws of the same KL do as much
        (-4.0, 3.5, 0.50, "not a lever"),  # inside +-6: a lever's size is excluded
        (-9.0, 3.5, 0.50, "undetermined"),  # holds zero but also a lever-sized change: too weak to tell
        (-6.0, 1.0, 0.50, "undetermined"),  # touching the margin is not inside it
    ],
)
def test_a_method_is_called_no_lever_only_when_a_lever_sized_effect_is_excluded(low, high, rank_p, expected):
    from pipeline.steering.comparison import verdict

    method = {"steering_ci_low": low, "steering_ci_high": high, "rank_p": rank_p}
    assert verdict(method, 6.0) == expected


def test_the_thesis_reads_every_detector_the_best_cannot_be_told_apart_from():
    from pipeline.steering.comparison import best_detectors

    methods = [{"method": "H-neurons", "detection": 0.97, "detection_ci_low": 0.93, "detection_ci_high": 0.99},
               {"method": "ITI heads", "detection": 0.95, "detection_ci_low": 0.90, "detection_ci_high": 0.98},
               {"method": "DiffMean", "detection": 0.79, "detection_ci_low": 0.72, "detection_ci_high": 0.85}]
    assert [m["method"] for m in best_detectors(methods)] == ["H-neurons", "ITI heads"]
    methods[1]["detection_ci_high"] = 0.92  # now clearly below the best's lower bound
    assert [m["method"] for m in best_detectors(methods)] == ["H-neurons"]


def test_the_table_commits_one_row_per_method_that_gives_back_its_estimates():
    from claims import Estimate
    from pipeline.steering.comparison import recompute, table_rows

    est = {f"{k}_{p}": Estimate(value=v, ci=(v - 1, v + 1), level=0.95, n=10 + i, method="bootstrap", unit="items")
           for i, (k, v) in enumerate((("hneuron", 0.9), ("diffmean", 0.8))) for p in ("auroc", "effect_pp")}
    methods = [{"method": "H-neurons", "setting": "s", "rank_p": 0.3, "kl": 0.05, "verdict": "undetermined"},
               {"method": "DiffMean", "setting": "t", "rank_p": 0.4, "kl": None, "verdict": "moves it, not specifically"}]
    rows = table_rows(est, methods)
    assert [r["method"] for r in rows] == ["H-neurons", "DiffMean"] and rows[1]["verdict"].startswith("moves")
    assert recompute({"methods": rows}, {}) == est


def test_the_table_is_unreadable_when_a_control_is_unbalanced_or_reports_no_balance():
    from pipeline.steering.comparison import control_balance

    balances = {"H-neurons": {"layer": 0.0, "activity": 0.06, "kl": 0.005}, "ITI heads": {"kl": -0.03}}
    out = control_balance(balances, 0.1)
    assert out["controls_balanced"] == 1 and out["unbalanced_controls_text"] == "none"
    assert abs(out["control_balance_worst"]["H-neurons"] - 0.06) < 1e-12
    out = control_balance({**balances, "DiffMean": {"kl": -0.22}, "SAE latents": None}, 0.1)
    assert out["controls_balanced"] == 0 and out["unbalanced_controls_text"] == "DiffMean, SAE latents"


def test_the_table_reads_a_scaled_arm_by_its_slope_and_its_control_at_each_end():
    from claims import Estimate
    from pipeline.steering.comparison import end_balance, over_two_units

    slope = Estimate(value=-1.2, ci=(-3.1, 0.7), level=0.95, n=188)
    change = over_two_units(slope)
    assert (change.value, change.ci) == (-2.4, (-6.2, 1.4))  # past the 6-point margin: undetermined, as the claim
    kl = {"alphas": [0.0, 3.0], "h_neurons": [0.1, 0.1], "candidates": [[0.05, 0.2], [0.2, 0.05], [1.0, 1.0]],
          "kept": [0, 1]}
    ends = end_balance(kl, "h_neurons")
    assert set(ends) == {"kl_alpha_0", "kl_alpha_3"} and abs(ends["kl_alpha_0"] - ends["kl_alpha_3"]) < 1e-12
    kl["kept"] = [0]  # less KL at alpha 0, more at alpha 3: the mean over both ends hides it
    ends = end_balance(kl, "h_neurons")
    assert ends["kl_alpha_0"] < -0.6 and ends["kl_alpha_3"] > 0.6
    assert end_balance({}, "h_neurons") == {}


def test_the_table_reads_a_direction_controls_draws_by_context_answers_over_all_items():
    from pipeline.steering.comparison import control_answers

    def rows(setting, counts, finish_cut=0):
        out = [{"setting": setting, "strict": s, "finish": "stop"} for s, n in counts.items() for _ in range(n)]
        for r in out[:finish_cut]:
            r["finish"] = "length"
        return out

    real = rows("unsteered", {"context": 40, "memory": 40, "other": 20}) + \
        rows("steered", {"context": 30, "memory": 50, "other": 20})  # -10 points of context share
    control = [{"set": "neutral", "strict": "context", "finish": "stop"}]
    for k in range(32):  # each draw garbles half the answers, keeping context and memory in proportion
        garbled = rows("x", {"context": 20, "memory": 20, "other": 10, None: 50}, finish_cut=50 if k % 2 else 0)
        control += [{**r, "set": f"seed {k}"} for r in garbled]
    out = control_answers(real, control)
    assert out["real_readable"] == 0.8 and out["draws_less_readable"] == 32 and out["draw_readable"][0] == 0.4
    assert out["draw_cut_off"][:2] == [0.0, 0.5]
    # by context answers over all items every draw moves the rate by -20 points: all 32 are as large as the real -10
    assert abs(out["real_context_share_change_pp"] + 10.0) < 1e-9 and out["rank_p_context_share"] == 1.0


def test_a_downstream_node_reads_a_sweep_back_from_its_committed_rows():
    from types import SimpleNamespace

    from claims.items import decode, encode
    from pipeline.steering.committed import committed_sweep
    from pipeline.steering.summary import item_rows

    rows = {"compliance": [{"item": {"id": f"q{i}", "family": "capital" if i < 2 else "currency"}, "cluster": f"c{i}"}
                           for i in range(3)],
            "qa": [{"item": {"id": "q9", "family": "capital"}}]}
    records = [{"compliance": {"text": [" A", " B", " C"], "finish": ["stop"] * 3, "strict": ["context", None, "memory"],
                               "lenient": ["context", "other", "memory"]},
                "qa": {"text": [" X"], "finish": ["length"], "strict": ["right"], "lenient": ["right"]}},
               {"compliance": {"text": [" D", " E", " F"], "finish": ["stop"] * 3, "strict": ["memory"] * 3,
                               "lenient": ["memory"] * 3},
                "qa": {"text": [" Y"], "finish": ["stop"], "strict": ["wrong"], "lenient": ["wrong"]}}]
    committed = decode(encode("outcomes", item_rows([{"alpha": 1.0}, {"alpha": 3.0}], records, rows)), "outcomes")
    upstream = SimpleNamespace(name="neurons", items=lambda name: committed)
    got = committed_sweep(upstream, "alpha")
    assert got["settings"] == [1.0, 3.0]
    assert got["records"] == records  # what the generation file held, judges and finish reasons included
    assert [r["item"] for r in got["rows"]["compliance"]] == [r["item"] for r in rows["compliance"]]
    assert got["rows"]["compliance"][2]["cluster"] == "c2"
    with pytest.raises(ValueError, match="no outcome rows"):
        committed_sweep(upstream, "alpha", {"set": "h-features"})
