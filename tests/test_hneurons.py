"""The detection study's parts: CETT against a direct computation, probes on planted signal,
question-disjoint balanced splits, token spans from offsets, the labelling rule."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.hneurons.activations import text_and_spans
from pipeline.hneurons.judge import judge, label_of
from pipeline.hneurons.probing import (
    fit_probe,
    layer_counts,
    random_neurons,
    selected_neurons,
    univariate_ranking,
)
from pipeline.hneurons.split import balanced_split, group_of


@pytest.fixture(scope="module")
def tiny():
    from pipeline.models import load

    return load("tiny")


def direct_cett(lm, text: str, token_mask: np.ndarray) -> np.ndarray:
    """CETT from the weights by hand: run each layer's MLP input through gate/up/down ourselves."""
    import torch

    enc = lm.tokenizer([text], return_tensors="pt")
    captured = {}

    def grab(layer):
        def hook(module, inputs, output):
            captured[layer] = inputs[0].detach()
        return hook

    handles = [lm.mlp(layer).register_forward_hook(grab(layer)) for layer in range(lm.n_layers)]
    try:
        with torch.no_grad():
            lm.model(**enc)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for layer in range(lm.n_layers):
        mlp = lm.mlp(layer)
        x = captured[layer][0]  # (T, D): the MLP's input
        z = mlp.act_fn(x @ mlp.gate_proj.weight.T) * (x @ mlp.up_proj.weight.T)  # (T, F)
        W = mlp.down_proj.weight  # (D, F)
        h = z @ W.T  # (T, D)
        per_token = z.abs() * W.norm(dim=0) / h.norm(dim=-1, keepdim=True)
        rows.append(per_token[torch.as_tensor(token_mask)].mean(0).detach().numpy())
    return np.stack(rows)  # (L, F)


def test_cett_equals_direct_computation(tiny):
    from pipeline.hneurons.cett import cett_batch, encode_with_spans

    texts = ["Q: What is the capital of Chile?\nA: Santiago", "Q: Which element is Fe?\nA: Iron"]
    spans = {"answer": [(len(t) - len(t.split("A: ")[1]), len(t)) for t in texts], "all": [(0, len(t)) for t in texts]}
    values, counts = cett_batch(tiny, texts, spans)
    assert values["answer"].shape == (2, tiny.n_layers, tiny.d_ffn)
    _, _, masks = encode_with_spans(tiny.tokenizer, texts, spans)
    for i, text in enumerate(texts):
        n_tokens = len(tiny.tokenizer([text])["input_ids"][0])
        mask = masks["answer"][i, :n_tokens].numpy()
        assert counts["answer"][i] == mask.sum() > 0
        np.testing.assert_allclose(values["answer"][i], direct_cett(tiny, text, mask), rtol=1e-4, atol=1e-6)


def test_answer_span_tokens_come_from_offsets(tiny):
    from pipeline.hneurons.cett import encode_with_spans

    prompt = "Q: What is the capital of Japan?\nA: Tokyo\n\nQ: What is the capital of Peru?\nA:"
    text, spans = text_and_spans(prompt, "Lima")
    answer = spans["answer"]
    assert text[answer[0] : answer[1]] == "Lima"
    assert text[slice(*spans["question"])] == "Q: What is the capital of Peru?"
    assert text[slice(*spans["prompt_end"])] == ":" and spans["prompt_end"][1] <= spans["answer"][0]
    assert spans["question"][1] < spans["answer"][0]  # question and answer are disjoint
    empty, empty_spans = text_and_spans(prompt, "")
    assert empty[slice(*empty_spans["answer"])] == "\n"
    enc = tiny.tokenizer([text], return_offsets_mapping=True)
    _, _, masks = encode_with_spans(tiny.tokenizer, [text], {"answer": [answer]})
    picked = [enc["offset_mapping"][0][t] for t in np.flatnonzero(masks["answer"][0].numpy())]
    assert "".join(text[a:b] for a, b in picked).strip() == "Lima"


def test_capture_hooks_are_removed_even_on_error(tiny):
    import torch

    from pipeline.hneurons.cett import capture

    masks = {"all": torch.ones(1, 3)}
    with pytest.raises(RuntimeError), capture(tiny, masks):
        raise RuntimeError("boom")
    assert all(not tiny.mlp(layer).down_proj._forward_hooks for layer in range(tiny.n_layers))


def test_probe_recovers_planted_neurons():
    rng = np.random.default_rng(0)
    n, n_layers, d_ffn = 240, 4, 50
    X = rng.gamma(2.0, 0.1, size=(n, n_layers * d_ffn))
    y = rng.integers(0, 2, size=n)
    planted = [1 * d_ffn + 7, 3 * d_ffn + 42]
    X[:, planted] += 0.4 * y[:, None]  # hallucinated questions push two neurons up
    is_test = np.arange(n) >= 180
    groups = [f"g{i // 2}" for i in range(n)]
    fit = fit_probe(X, y, np.flatnonzero(~is_test), np.flatnonzero(is_test), groups, Cs=(0.01, 0.03, 0.1, 0.3),
                    folds=5, seed=0)
    neurons = selected_neurons(fit.coef, d_ffn)
    top = {(nn["layer"], nn["neuron"]) for nn in neurons[:2]}
    assert top == {(1, 7), (3, 42)}
    assert all(nn["weight"] > 0 for nn in neurons[:2])
    accuracy = ((fit.test_scores >= 0.5) == y[is_test]).mean()
    assert accuracy > 0.9
    assert len(neurons) < 20  # sparse
    assert [s["C"] for s in fit.sweep] == [0.01, 0.03, 0.1, 0.3]


def test_probe_on_noise_is_near_chance():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(200, 300)), rng.integers(0, 2, size=200)
    fit = fit_probe(X, y, np.arange(140), np.arange(140, 200), [str(i) for i in range(200)], Cs=(0.03, 0.3), seed=0,
                    n_jobs=2)
    accuracy = ((fit.test_scores >= 0.5) == y[140:]).mean()
    assert 0.3 < accuracy < 0.7


def test_random_neurons_match_layer_counts():
    counts = [0, 3, 1, 5]
    idx = random_neurons(counts, 100, np.random.default_rng(0))
    assert layer_counts([{"layer": i // 100} for i in idx], 4) == counts
    assert len(set(idx.tolist())) == 9
    assert len(random_neurons(counts, 100, np.random.default_rng(0), matched_layers=False)) == 9


def test_split_is_balanced_and_question_disjoint():
    rows = []
    for i in range(60):
        rows.append({"id": f"capital/c{i}", "family": "capital", "subject": f"C{i}", "gold": "x", "label": i % 3 == 0})
    for sym, name in [("Fe", "Iron"), ("Cu", "Copper"), ("Au", "Gold"), ("Ag", "Silver")] * 1:
        rows.append({"id": f"element_symbol/{name.lower()}", "family": "element_symbol", "subject": name, "gold": sym, "label": 1})
        rows.append({"id": f"element_name/{sym.lower()}", "family": "element_name", "subject": sym, "gold": name, "label": 0})
    ids = [r["id"] for r in rows]
    groups = [group_of(r) for r in rows]
    assert group_of(rows[-1]) == group_of(rows[-2])  # symbol and name questions share their element
    train, test = balanced_split(ids, [int(r["label"]) for r in rows], groups, 0.3, seed=0)
    label = {r["id"]: int(r["label"]) for r in rows}
    group = dict(zip(ids, groups, strict=True))
    assert not {group[i] for i in train} & {group[i] for i in test}
    for side in (train, test):
        assert sum(label[i] for i in side) * 2 == len(side) > 0
    assert balanced_split(ids, [int(r["label"]) for r in rows], groups, 0.3, seed=0) == (train, test)


@pytest.mark.parametrize(("outcomes", "label"), [
    (["correct"] * 5, "faithful"), (["wrong"] * 5, "hallucinated"),
    (["correct", "wrong", "correct", "correct", "correct"], None), (["correct", "format", "correct"], None),
    (["wrong", "format", "wrong"], "format_failure"), (["format"] * 3, "format_failure")])
def test_label_needs_agreement(outcomes, label):
    assert label_of(outcomes) == label


@pytest.mark.parametrize(("family", "subject", "answer", "generation", "outcome"), [
    ("element_name", "Sc", "Scandium", " Scandium\n", ("correct", "")),
    ("element_name", "Sc", "Scandium", " Sc\n", ("format", "echoes the subject")),
    ("element_name", "Sc", "Scandium", " Titanium\n", ("wrong", "")),
    ("capital", "Djibouti", "Djibouti", " Djibouti\n", ("correct", "")),
    ("capital", "France", "Paris", "\n", ("format", "empty")),
    ("capital", "France", "Paris", " What is the capital of Spain?", ("format", "off-format")),
    ("capital", "France", "Paris", " The capital city of the republic of France is", ("format", "off-format")),
    ("city_country", "Lyon", "France", " Lyon\n", ("format", "echoes the subject")),
    ("city_country", "Lyon", "France", " Belgium\n", ("wrong", "")),
])
def test_the_judge_tells_wrong_answers_from_format_failures(family, subject, answer, generation, outcome):
    from pipeline.data import QAItem
    from pipeline.data.embedded import TEMPLATES

    item = QAItem(id="x", family=family, subject=subject, question=TEMPLATES[family][0].format(s=subject), answer=answer)
    assert judge(generation, item) == outcome


def test_univariate_ranking_puts_the_separating_feature_first():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30))
    y = rng.integers(0, 2, 200)
    X[:, 17] -= 2.0 * y  # negative association counts as much as positive
    X[:, 4] += 0.8 * y
    assert univariate_ranking(X, y)[:2].tolist() == [17, 4]


def test_shared_prefix_reading_equals_a_full_pass(tiny):
    from pipeline.hneurons.cett import read_batch

    shots = "Q: Japan?\nA: Tokyo\nQ: Peru?\nA: Lima\n"
    texts, spans = [], {"answer": [], "question": []}
    for country, capital in (("France", "Paris"), ("Chad", "N'Djamena"), ("Fiji", "Suva")):
        text, s = text_and_spans(shots + f"Q: {country}?\nA:", capital)
        texts.append(text)
        spans["answer"].append(s["answer"])
        spans["question"].append(s["question"])
    shared = read_batch(tiny, texts, spans, scored="answer")
    full = read_batch(tiny, texts, spans, scored="answer", share_prefix=False)
    for name in spans:
        np.testing.assert_allclose(shared[0][name], full[0][name], rtol=1e-4, atol=1e-6)
        assert (shared[1][name] == full[1][name]).all()
    np.testing.assert_allclose(shared[2]["logprob"], full[2]["logprob"], rtol=1e-5)


def test_family_balance_removes_the_family_signal():
    rng = np.random.default_rng(3)
    ids, labels, groups, families = [], [], [], []
    for fam, p_halluc in (("capital", 0.4), ("atomic_number", 1.0), ("element_symbol", 0.2)):
        for i in range(60):
            ids.append(f"{fam}/{i}")
            labels.append(int(rng.random() < p_halluc))
            groups.append(f"{fam}{i}")
            families.append(fam)
    train, test = balanced_split(ids, labels, groups, 0.3, seed=0, strata=families)
    label = dict(zip(ids, labels, strict=True))
    for side in (train, test):
        for fam in ("capital", "element_symbol"):
            members = [q for q in side if q.startswith(fam)]
            assert members and sum(label[q] for q in members) * 2 == len(members)
        assert not [q for q in side if q.startswith("atomic_number")]  # one class only: dropped
