"""The attribution study on the tiny model: the game's data, adapters that leave the shared model
unchanged, the cached top-layer forward, Bergson's scores against a plain per-example backward, a
planted helpful example ranked first, a Bergson failure failing its claim loudly, the interval
helpers, and the scores and fingerprint through the engine (the selection comparisons are in
tests/test_attribution_selection.py)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"n_base": 24, "n_candidate": 40, "n_query": 8, "n_eval": 24}
TINY = {"profile": "tiny", **SIZES, "n_select": 8, "readings": ["mean-p16", "nearest-p16-query"], "lora_layers": 1,
        "epochs": 1, "k": 8, "n_subsets": 2, "eval_batch_size": 8,
        "sae_layer": 0, "sae_config": {"layer": 0, "d_sae": 64, "k": 8, "steps": 30, "batch_size": 64,
                                       "max_texts": 48},
        "n_shuffles": 3, "alphas": [1.0, 100.0]}


@pytest.fixture(scope="module")
def lm():
    from pipeline.models import load

    return load("tiny")


@pytest.fixture(scope="module")
def examples():
    from pipeline.attribution import game

    return [e.to_dict() for e in game.build(0, p_noisy=0.2, p_off_format=0.2, **SIZES)]


def _spec(layers: int = 1):
    from pipeline.attribution.lora import LoraSpec

    return LoraSpec(rank=4, alpha=8, layers=layers)


# ---- data -----------------------------------------------------------------------------------------
def test_the_game_is_deterministic_with_entities_kept_apart(examples):
    from pipeline.attribution import game

    again = [e.to_dict() for e in game.build(0, p_noisy=0.2, p_off_format=0.2, **SIZES)]
    assert game.examples_hash(again) == game.examples_hash(examples)
    assert game.examples_hash(game.build(1, p_noisy=0.2, p_off_format=0.2, **SIZES)) != game.examples_hash(examples)
    assert Counter(e["split"] for e in examples) == {"base": 24, "candidate": 40, "query": 8, "eval": 24}
    entities = {s: {e["entity"] for e in examples if e["split"] in group}
                for s, group in {"pool": ("base", "candidate"), "query": ("query",), "eval": ("eval",)}.items()}
    assert not entities["pool"] & entities["eval"] and not entities["pool"] & entities["query"]
    assert not entities["query"] & entities["eval"]
    held_out = [e for e in examples if e["split"] in ("query", "eval")]
    assert all(e["variant"] == "clean" and not e["ambiguous"] for e in held_out)
    assert all(e["completion"] == f" {e['answer']}\n" for e in held_out)
    pool = [e for e in examples if e["split"] in ("base", "candidate")]
    assert {e["variant"] for e in pool} == {"clean", "noisy", "off_format"}
    assert all(e["completion"] != f" {e['answer']}\n" for e in pool if e["variant"] == "noisy")
    assert all(e["answer"].lower() in e["completion"].lower() and e["completion"] != f" {e['answer']}\n"
               for e in pool if e["variant"] == "off_format")


def test_no_pool_completion_names_a_held_out_entity():
    """The study's own sizes: before, 53 of 128 noisy answers and the two Georgia (US state)
    examples named entities of the query, evaluation or selection sets."""
    from pipeline.attribution import game

    built = game.build(42, 256, 448, 64, 200, 0.2, 0.2, n_select=100)
    held = {e.answer for e in built if e.split in ("query", "eval", "select")}
    pool = [e for e in built if e.split in ("base", "candidate")]
    assert len(pool) == 704 and sum(e.variant == "noisy" for e in pool) > 100
    assert "Georgia" in held and not [e.id for e in pool if e.answer in held]
    said = {e.id: e.completion.strip().lower().removeprefix("it is ").removeprefix("the answer is ").rstrip(".")
            for e in pool}
    assert not [i for i, name in said.items() if name in {h.lower() for h in held}]


def test_the_game_says_which_split_cannot_be_filled():
    from pipeline.attribution import game

    with pytest.raises(ValueError, match="the eval split has .* pairs, fewer than the 5000 asked for"):
        game.build(0, 8, 8, 4, 5000, 0.2, 0.2)


def test_clues_that_several_entities_share_are_ambiguous():
    from pipeline.attribution import game

    euro = [e for e in game.build(0, 300, 500, 8, 8, 0.0, 0.0) if e.family == "country_currency"
            and "currency Euro; continent Europe" in e.prompt]
    assert euro and all(e.ambiguous for e in euro)


# ---- adapters and the cached forward ------------------------------------------------------------
def test_an_adapter_leaves_the_shared_model_unchanged(lm):
    import torch

    from pipeline.attribution.lora import adapter

    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in lm.model.named_parameters()}
    with adapter(lm, _spec(), seed=0) as model:
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p)
        assert any("lora_" in name for name, _ in lm.model.named_modules())
    after = lm.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora_" in name for name, _ in lm.model.named_modules())
    assert flags == {k: p.requires_grad for k, p in lm.model.named_parameters()}


def test_the_cached_top_layers_give_the_full_forward_logits(lm, examples):
    import torch

    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals, completion_logits

    enc = encode(lm.tokenizer, examples[:6])
    cache = Residuals.capture(lm, enc, start=1, batch_size=4)
    with torch.no_grad():
        logits, targets = completion_logits(lm, cache, enc, list(range(6)))
        full = [lm.model(torch.tensor([enc.ids[i]])).logits[0, enc.n_prompt[i] - 1: -1] for i in range(6)]
    torch.testing.assert_close(logits, torch.cat(full), atol=1e-5, rtol=1e-5)
    assert targets.tolist() == [t for i in range(6) for t in enc.ids[i][enc.n_prompt[i]:]]


def test_training_lowers_the_loss_and_the_adapter_round_trips(lm, examples):
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.lora import adapter, adapter_state
    from pipeline.attribution.trainer import Schedule, evaluate, train

    enc = encode(lm.tokenizer, examples[:16])
    cache = Residuals.capture(lm, enc, start=1)
    with adapter(lm, _spec(), seed=0) as model:
        losses = train(lm, model, cache, enc, list(range(16)), Schedule(lr=1e-2, epochs=4, batch_size=8))
        nll = evaluate(lm, cache, enc, range(16)).nll
        state = adapter_state(model)
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    with adapter(lm, _spec(), state=state) as model:
        np.testing.assert_allclose(evaluate(lm, cache, enc, range(16)).nll, nll, rtol=1e-5)


# ---- Bergson ----------------------------------------------------------------------------------
@pytest.fixture
def trained(lm, examples):
    """A tiny adapter trained a few steps (so that both LoRA matrices carry gradient signal)."""
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.lora import adapter_state
    from pipeline.attribution.trainer import Schedule, train

    enc = encode(lm.tokenizer, examples)
    cache = Residuals.capture(lm, enc, start=1)
    from pipeline.attribution.lora import adapter

    with adapter(lm, _spec(), seed=0) as model:
        train(lm, model, cache, enc, list(range(24)), Schedule(lr=1e-2, epochs=1, batch_size=8))
        return enc, adapter_state(model)


def test_bergson_scores_are_the_plain_per_example_cosine(lm, examples, trained):
    from pipeline.attribution.gradients import bergson_scores, cosine_scores, plain_gradients
    from pipeline.attribution.lora import adapter

    enc, state = trained
    query, pool = enc.subset(range(64, 72)), enc.subset(range(64))
    with adapter(lm, _spec(), state=state) as model:
        tail = bergson_scores(lm, model, query, pool, projection_dim=0, seed=0)
        plain_model = bergson_scores(lm, model, query, pool, projection_dim=0, seed=0, tail=False)
        reference = cosine_scores(plain_gradients(lm, model, pool), plain_gradients(lm, model, query))
    np.testing.assert_allclose(tail, plain_model, atol=1e-6)
    np.testing.assert_allclose(tail, reference, atol=1e-5)


@pytest.mark.parametrize("projection_dim", [0, 16])
def test_attribution_ranks_a_planted_helpful_example_first(lm, examples, trained, projection_dim):
    from pipeline.attribution.encoding import Encoded
    from pipeline.attribution.gradients import bergson_scores
    from pipeline.attribution.lora import adapter

    enc, state = trained
    query = enc.subset([70])  # one query example; its copy is planted at position 17 of the pool
    pool = enc.subset(range(40))
    planted = Encoded(pool.ids[:17] + query.ids + pool.ids[17:], pool.n_prompt[:17] + query.n_prompt + pool.n_prompt[17:])
    with adapter(lm, _spec(), state=state) as model:
        scores = bergson_scores(lm, model, query, planted, projection_dim=projection_dim, seed=3)
    assert int(np.argmax(scores)) == 17
    assert scores[17] == pytest.approx(1.0, abs=1e-4) and np.sort(scores)[-2] < scores[17] - 1e-3


def test_a_bergson_failure_raises_with_its_cause(lm, examples, trained, monkeypatch):
    import bergson

    from pipeline.attribution.gradients import BergsonError, bergson_scores
    from pipeline.attribution.lora import adapter

    enc, state = trained

    def broken(self, desc=None):
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(bergson.CollectorComputer, "run_with_collector_hooks", broken)
    with adapter(lm, _spec(), state=state) as model, pytest.raises(BergsonError) as err:
        bergson_scores(lm, model, enc.subset([70]), enc.subset(range(8)), projection_dim=16, seed=0)
    assert str(err.value.message) == ("Bergson failed while scoring (RuntimeError: no kernel for this op); "
                                      "the attribution has no fallback")
    monkeypatch.setitem(sys.modules, "bergson", None)
    with adapter(lm, _spec(), state=state) as model, pytest.raises(BergsonError, match="cannot be imported"):
        bergson_scores(lm, model, enc.subset([70]), enc.subset(range(8)), projection_dim=16, seed=0)


# ---- intervals ------------------------------------------------------------------------------------
def test_arm_gain_is_paired_and_resamples_runs():
    from pipeline.attribution.estimates import arm_gain

    rng = np.random.default_rng(0)
    entities = [f"e{i // 2}" for i in range(200)]
    base = rng.random((8, 200)) < 0.4
    same = arm_gain(base[:3], base, entities, level=0.95, seed=0, n_resamples=300)
    better = arm_gain(base[:3] | (rng.random((3, 200)) < 0.3), base, entities, level=0.95, seed=0, n_resamples=300)
    assert same.ci[0] < 0 < same.ci[1]
    assert better.ci[0] > 0 and better.n == 200 and "100 entity clusters" in better.unit


def test_an_arm_that_never_succeeds_still_carries_an_interval():
    from pipeline.attribution.estimates import arm_success

    entities = [f"e{i // 2}" for i in range(200)]
    none = arm_success(np.zeros((1, 200)), entities, level=0.95, seed=0)
    assert none.value == 0 and none.ci[0] == 0 and 0.03 < none.ci[1] < 0.05 and none.method == "wilson-clusters"
    some = arm_success((np.arange(200) % 3 == 0)[None], entities, level=0.95, seed=0, n_resamples=200)
    assert some.method == "bootstrap-run-cluster-percentile" and some.ci[0] < some.value < some.ci[1]


def test_the_ridge_path_is_sklearns_standardised_ridge():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipeline.attribution.estimates import ridge_path

    rng = np.random.default_rng(1)
    X = np.abs(rng.normal(size=(80, 120))) * (rng.random((80, 120)) < 0.2)
    X[:, :10] = 0.0  # dead features
    y = rng.normal(size=80)
    ours = ridge_path(X[:60], y[:60], X[60:], np.array([0.5, 50.0]))
    for j, alpha in enumerate((0.5, 50.0)):
        theirs = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[:60], y[:60]).predict(X[60:])
        np.testing.assert_allclose(ours[:, j], theirs, atol=1e-9)


def test_grouped_ridge_finds_a_planted_signal_and_not_a_shuffled_one():
    from pipeline.attribution.estimates import grouped_predictions, spearman

    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 30))
    y = X[:, 0] + 0.5 * rng.normal(size=240)
    groups = np.repeat(np.arange(6), 40)
    assert spearman(grouped_predictions(X, y, groups, (1.0, 100.0)), y) > 0.7
    shuffled = rng.permutation(y)
    assert abs(spearman(grouped_predictions(X, shuffled, groups, (1.0, 100.0)), shuffled)) < 0.2


# ---- the chain through the engine -------------------------------------------------------------------
def run_node(project, experiment, **config):
    import importlib

    from claims.experiment import make_node
    from claims.runner import Runner

    fields = importlib.import_module(experiment).Config.model_fields
    chosen = {k: v for k, v in {**TINY, **config}.items() if k in fields}
    return Runner(project).ensure(make_node(experiment, chosen, "test")).result


def test_the_attribution_chain_runs_on_the_tiny_model(project):
    tuned = run_node(project, "pipeline.attribution.finetune")
    assert tuned.values["n_base"] == 24 and tuned.values["steps"] == 3 and len(tuned.values["eval_success"]) == 24
    scores = run_node(project, "pipeline.attribution.scores")
    assert len(scores.values["scores"]) == 64 and np.isfinite(scores.values["scores"]).all()
    shuffled = run_node(project, "pipeline.attribution.fingerprint_shuffled")
    fingerprint = run_node(project, "pipeline.attribution.fingerprint")
    assert fingerprint.values["n_examples"] == 64 and fingerprint.values["d_sae"] == 64
    assert {"spearman", "gain_over_best", "spearman_family"} <= set(fingerprint.estimates)
    assert len(shuffled.values["shuffle_spearman"]) == 3
    assert set(shuffled.values["balance"]) == {"length", "variant"}
    assert shuffled.values["balance"]["variant"] == 0.0  # within-variant shuffles keep each variant's ranks


def test_the_fingerprint_reads_the_sae_studys_dictionaries_and_chooses_one_on_held_out_families(project):
    """Candidates: the study's dictionaries at sae_layers and every one of a second set (another width),
    named <layer>w<d_sae>; the one chosen scores best on the families set aside; the target is the
    reading the readings node chose."""
    from claims.experiment import make_node
    from claims.runner import Runner
    from pipeline.attribution.config import ReadingsConfig, ScoresConfig
    from pipeline.attribution.fingerprint import Config, recompute, target

    config = {**{k: v for k, v in TINY.items() if k not in ("sae_config", "sae_layer", "n_shuffles")},
              "sae_experiment": "pipeline.saefeatures.saes", "sae_config": {}, "sae_layers": [0, 1],
              "wide_sae_config": {"layers": [1], "d_sae": 96}, "reading": "chosen", "select_k": 8,
              "n_select_families": 2}
    runner = Runner(project)
    node = make_node("pipeline.attribution.fingerprint",
                     {k: v for k, v in config.items() if k in Config.model_fields}, "test")
    state = runner.ensure(node)
    values = state.result.values
    assert values["candidates"] == ["0", "1", "1w96"] and values["candidate_layers"] == [0, 1]
    assert values["sae_dictionary"] in values["candidates"]
    assert values["d_sae"] == (96 if values["sae_dictionary"] == "1w96" else 64)
    assert len(values["selection_families"]) == 2 and not set(values["selection_families"]) & set(values["reported_families"])
    assert set(values["selection_spearman"]) == {"0", "1", "1w96"}
    assert values["sae_dictionary"] == max(values["selection_spearman"], key=values["selection_spearman"].get)
    readings = runner.ensure(make_node("pipeline.attribution.readings", {k: v for k, v in config.items()
                                       if k in ReadingsConfig.model_fields}, "test")).result.values
    scores = runner.ensure(make_node("pipeline.attribution.scores", {k: v for k, v in config.items()
                                     if k in ScoresConfig.model_fields}, "test")).result.values
    assert values["reading"] == readings["chosen"]
    rows = state_items(project, node)
    rank = target(np.asarray(scores["reading_scores"][readings["chosen"]]))
    assert [r["rank"] for r in rows] == pytest.approx(rank.tolist())
    items = {"examples": rows}
    assert sum(r["reported"] for r in items["examples"]) == values["n_reported"] < values["n_examples"]
    again = recompute(items, node.config)
    assert again["spearman"].value == state.result.estimates["spearman"].value  # rebuilt from committed rows


def test_a_bag_of_tokens_baseline_finds_a_rank_that_one_token_decides():
    """The fingerprint's bag-of-words baseline: each row is the example's token shares (summing to 1),
    one column per token the examples use; under the family-held-out ridge it recovers a rank planted
    on one token's presence in families it was not fit on, and a rank planted on nothing it does not."""
    from pipeline.attribution.estimates import grouped_predictions, spearman
    from pipeline.attribution.fingerprint import bag_of_words

    rng = np.random.default_rng(0)
    ids = [rng.integers(10, 40, size=rng.integers(5, 12)).tolist() for _ in range(160)]
    for i in range(0, 160, 2):
        ids[i][0] = 7  # token 7 marks half the examples
    X = bag_of_words(ids)
    assert X.shape == (160, len({t for seq in ids for t in seq})) and np.allclose(X.sum(axis=1), 1.0)
    marked = np.array([7 in seq for seq in ids], dtype=float)
    groups = np.repeat([f"g{i}" for i in range(8)], 20)
    planted = marked + 0.1 * rng.random(160)
    assert spearman(grouped_predictions(X, planted, groups, (0.01, 0.1, 1.0), 0), planted) > 0.7
    noise = rng.random(160)
    assert spearman(grouped_predictions(X, noise, groups, (0.01, 0.1, 1.0), 0), noise) < 0.3


def test_the_factored_ridge_fits_many_targets_as_the_one_target_regression_does():
    """GroupedRidge gives, for each target column, the out-of-fold predictions of
    grouped_predictions (alpha chosen per column in the inner folds), up to rounding; a planted
    linear signal is recovered and a pure-noise column is not (held-out groups can make it negative)."""
    from pipeline.attribution.estimates import grouped_predictions, spearman
    from pipeline.attribution.ridge import GroupedRidge

    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 40)) * (rng.random((120, 40)) < 0.3)
    X[:, 7] = 0.0  # a constant feature is dropped, as in ridge_path
    groups = np.repeat([f"g{i}" for i in range(6)], 20)
    Y = np.stack([X[:, :3].sum(axis=1) + 0.05 * rng.normal(size=120), rng.random(120), X[:, 5]], axis=1)
    alphas = (0.1, 1.0, 10.0, 1e3)
    together = GroupedRidge(X, groups, alphas).predict(Y)
    for j in range(Y.shape[1]):
        np.testing.assert_allclose(together[:, j], grouped_predictions(X, Y[:, j], groups, alphas), atol=1e-10)
    assert spearman(together[:, 0], Y[:, 0]) > 0.9 and spearman(together[:, 1], Y[:, 1]) < 0.3
    with pytest.raises(ValueError, match="targets must be"):
        GroupedRidge(X, groups, alphas).predict(Y[:10])


def test_the_models_loss_is_a_baseline_of_the_fingerprint_on_the_same_examples(project):
    """The confidence baselines read the fingerprint's own rows (same examples, same reported
    families), recompute from their committed rows, and a planted loss that is the rank itself
    is found by the same regression (Spearman 1)."""
    from claims.experiment import make_node
    from claims.runner import Runner
    from pipeline.attribution.estimates import grouped_predictions, spearman
    from pipeline.attribution.fingerprint_confidence import BASELINES, Config, features, recompute

    config = {k: v for k, v in TINY.items() if k in Config.model_fields}
    node = make_node("pipeline.attribution.fingerprint_confidence", config, "test")
    state = Runner(project).ensure(node)
    rows = state_items(project, node)
    fingerprint = run_node(project, "pipeline.attribution.fingerprint")
    assert len(rows) == fingerprint.values["n_examples"] == state.result.values["n_examples"]
    assert all(r["loss_base"] > 0 and r["loss_shipped"] > 0 for r in rows)
    estimates = state.result.estimates
    assert estimates["spearman"].value == fingerprint.estimates["spearman"].value  # the same rows, the same split
    assert set(BASELINES) == {k.removeprefix("gain_over_") for k in estimates if k.startswith("gain_over_")} - {"best"}
    again = recompute({"examples": rows}, node.config)
    assert again["gain_over_best"].value == estimates["gain_over_best"].value
    best = state.result.values["best_baseline"]
    assert estimates["spearman_best"].value == max(estimates[f"spearman_{b}"].value for b in BASELINES)
    assert estimates["spearman_best"].value == estimates[f"spearman_{best}"].value

    y = np.array([r["rank"] for r in rows])
    groups = np.array([r["family"] for r in rows])
    text = np.ones((len(rows), 3))
    planted = features(y, np.zeros(len(rows)), text)["loss_shipped"]
    assert spearman(grouped_predictions(planted, y, groups, (1.0,), 0), y) == pytest.approx(1.0)


def state_items(project, node, name="examples"):
    from claims import items as claim_items
    from claims.store import Store

    meta = Store(project).read(node).sidecar["items"][name]
    return claim_items.decode((project.root / meta["path"]).read_bytes(), meta["path"])


def test_shuffles_within_length_strata_keep_what_length_explains():
    """A 'fingerprint' that reads only length beats shuffles across the pool but not shuffles
    within length strata: the stratified control is the one a length reader cannot pass."""
    from pipeline.attribution.estimates import grouped_predictions, spearman
    from pipeline.attribution.fingerprint_shuffled import permute_within, strata

    rng = np.random.default_rng(0)
    n = 300
    length = rng.integers(5, 60, size=n).astype(float)
    variant = rng.choice(["clean", "noisy", "off_format"], size=n)
    y = np.argsort(np.argsort(length + 5 * rng.normal(size=n))) / n
    X = np.column_stack([length, rng.normal(size=(n, 3))])
    groups = np.repeat(np.arange(6), n // 6)
    real = spearman(grouped_predictions(X, y, groups, (1.0, 100.0)), y)
    stratum = strata(variant, length, 5)
    assert len(np.unique(stratum)) == 15
    within = permute_within(y, stratum, rng)
    for s in np.unique(stratum):  # the same ranks inside each stratum, reordered
        assert sorted(within[stratum == s]) == sorted(y[stratum == s])
    across = [spearman(grouped_predictions(X, p, groups, (1.0, 100.0)), p) for p in (rng.permutation(y) for _ in range(5))]
    held = []
    for _ in range(5):
        p = permute_within(y, stratum, rng)
        held.append(spearman(grouped_predictions(X, p, groups, (1.0, 100.0)), p))
    assert real > 0.8 and max(across) < 0.3  # unstratified shuffles: the length reader looks like a finding
    assert min(held) > 0.6  # within length strata the shuffles keep most of what length explains


def test_a_bergson_failure_fails_the_claim_with_a_clear_message(project, monkeypatch):
    import bergson

    from claims.errors import ExperimentError

    def broken(self, desc=None):
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(bergson.CollectorComputer, "run_with_collector_hooks", broken)
    with pytest.raises(ExperimentError, match=r"Bergson failed while collecting gradients \(RuntimeError: no kernel "
                                              r"for this op\); the attribution has no fallback"):
        run_node(project, "pipeline.attribution.scores")


def test_the_fingerprint_refuses_an_sae_on_another_layer(project):
    from claims.errors import ExperimentError

    with pytest.raises(ExperimentError, match="the SAE reads block 0 .* but sae_layer is 1"):
        run_node(project, "pipeline.attribution.fingerprint", sae_layer=1)


def test_the_paper_models_nesting_works_too():
    """gemma-3-4b-it loads as Gemma3ForConditionalGeneration (language model under model.language_model,
    a vision tower beside it): adapters go on the language model's layers only, the cached forward and
    Bergson read it the same way. A tiny random model of that class stands in for it (no hub)."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    from pipeline.attribution import game
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals, completion_logits
    from pipeline.attribution.gradients import bergson_scores, cosine_scores, plain_gradients
    from pipeline.attribution.lora import adapter, target_names
    from pipeline.models import tiny
    from pipeline.models.loaded import LoadedModel

    tok = tiny.tokenizer()
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=28, patch_size=14)
    config = Gemma3Config(text_config=Gemma3TextConfig(vocab_size=len(tok), **tiny.CONFIG).to_dict(),
                          vision_config=vision.to_dict(), mm_tokens_per_image=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lm = LoadedModel(model=Gemma3ForConditionalGeneration(config).eval(), tokenizer=tok, profile="tiny",
                         model_id="tiny-gemma3-multimodal")
    assert all(name.startswith("model.language_model.layers.1.") for name in target_names(lm.model, _spec()))
    enc = encode(tok, [e.to_dict() for e in game.build(0, 8, 8, 4, 4, 0.2, 0.2)])
    cache = Residuals.capture(lm, enc, start=1)
    with torch.no_grad():
        logits, _ = completion_logits(lm, cache, enc, [0, 1])
        full = torch.cat([lm.model(torch.tensor([enc.ids[i]])).logits[0, enc.n_prompt[i] - 1: -1] for i in (0, 1)])
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)
    with adapter(lm, _spec(), seed=0) as model:
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(1))
        scores = bergson_scores(lm, model, enc.subset([16, 17]), enc.subset(range(16)), projection_dim=0, seed=0)
        reference = cosine_scores(plain_gradients(lm, model, enc.subset(range(16))),
                                  plain_gradients(lm, model, enc.subset([16, 17])))
    np.testing.assert_allclose(scores, reference, atol=1e-5)


def test_the_dictionary_choice_reads_no_reported_familys_rank():
    """Each candidate is scored on the set-aside families by fits on those families only: scrambling
    the reported families' ranks leaves every choice score unchanged, and a candidate that carries
    the rank on the set-aside families wins."""
    from pipeline.attribution.config import FingerprintConfig
    from pipeline.attribution.fingerprint import choice_scores

    rng = np.random.default_rng(0)
    groups = np.repeat(np.array([f"f{i}" for i in range(6)]), 30)
    y = rng.random(len(groups))
    report = ~np.isin(groups, ["f0", "f1", "f2"])
    signal = np.hstack([y[:, None] + 0.05 * rng.standard_normal((len(y), 1)), rng.standard_normal((len(y), 3))])
    features = {"signal": signal, "noise": rng.standard_normal((len(y), 4))}
    cfg = FingerprintConfig(profile="tiny", alphas=(1.0, 100.0))
    scores = choice_scores(features, y, groups, report, cfg)
    scrambled = y.copy()
    scrambled[report] = rng.permutation(scrambled[report])
    assert choice_scores(features, scrambled, groups, report, cfg) == scores
    assert max(scores, key=scores.get) == "signal" and scores["signal"] > 0.9
