"""Selection comparisons of the attribution study: matched random draws reproduce the top window's
composition in every stratum, trivial filters keep what they say, the rule that chooses a reading,
readings scored from kept gradients against Bergson's own and a plain backward, a planted ranking
that beats matched random where a variant-only ranking does not, a filter that is perfect on planted
data winning against the ranking as the claim's spec reads it, and the arms through the engine."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.test_attribution import SIZES, TINY, _spec

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("a", "b", "c")


def synthetic_pool(n: int = 150, seed: int = 0) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Examples with a variant, a family, a length and a hidden `useful` flag independent of them."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        variant = ("clean", "clean", "noisy", "off_format")[rng.integers(4)]
        completion = {"clean": " Laos\n", "noisy": " Peru\n", "off_format": " It is Laos."}[variant]
        examples.append({"id": f"x{i}", "entity": f"e{i}", "variant": variant, "family": FAMILIES[rng.integers(3)],
                         "completion": completion, "difficulty": float(rng.random()), "n_clues": 1,
                         "ambiguous": False})
    return examples, rng.integers(10, 30, size=n), rng.random(n) < 0.5


def _keys(examples, lengths, order):
    from pipeline.attribution import subsets

    return subsets.strata(examples, lengths, order, 4)


# ---- matched draws --------------------------------------------------------------------------------
def test_a_matched_draw_reproduces_the_top_windows_composition_in_every_stratum():
    from pipeline.attribution import subsets

    examples, lengths, _ = synthetic_pool()
    rng = np.random.default_rng(1)
    order = np.array(sorted(range(150), key=lambda i: (examples[i]["variant"] != "clean", rng.random())))
    keys = _keys(examples, lengths, order)
    target = order[:40]
    draws = subsets.random_draws(order, 40, 0, 0, 32, seed=0, matched=True, keys=keys)
    want = Counter(keys[int(i)] for i in target)
    for draw, borrowed in draws:
        assert len(set(draw)) == 40 and borrowed == 0
        assert Counter(keys[int(i)] for i in draw) == want
    assert len({tuple(d) for d, _ in draws}) == 32  # distinct draws: the matched control has room
    cov = subsets.covariates(examples, lengths)
    bal = subsets.balance(target, [d for d, _ in draws], cov)
    assert bal["clean"] == bal["noisy"] == bal["off_format"] == bal["family"] == 0.0
    assert abs(bal["length"]) < 0.1
    room = subsets.overlap(target, [d for d, _ in draws])
    assert 0 < room["mean"] < 1
    unmatched = subsets.random_draws(order, 40, 0, 0, 32, seed=0, matched=False)
    assert subsets.balance(target, [d for d, _ in unmatched], cov)["clean"] < -0.5  # what matching removes


def test_a_stratum_short_of_eligible_examples_borrows_from_a_coarser_one():
    from pipeline.attribution import subsets

    examples, lengths, _ = synthetic_pool()
    order = np.array(sorted(range(150), key=lambda i: (examples[i]["variant"] != "clean", i)))
    keys = _keys(examples, lengths, order)
    n_clean = sum(e["variant"] == "clean" for e in examples)
    draw, borrowed = subsets.random_draws(order, 20, 0, n_clean - 10, 1, seed=0, matched=True, keys=keys)[0]
    assert len(set(draw)) == 20 and set(draw) <= set(order[n_clean - 10:])
    assert sum(examples[i]["variant"] == "clean" for i in draw) == 10  # every eligible clean example
    assert borrowed == 10
    with pytest.raises(ValueError, match="cannot draw 20 examples from the 10 at ranks >= 140"):
        subsets.random_draws(order, 20, 0, 140, 1, seed=0, matched=True, keys=keys)


def test_a_draw_nearest_in_a_planted_loss_matches_it_where_strata_of_composition_do_not():
    """The top of a ranking that follows a hidden loss: draws matched on composition alone carry the
    loss gap, draws nearest in the loss within variant and family remove it and keep the
    composition exact; the room left (overlap) is reported, and the draws are reproducible."""
    from pipeline.attribution import subsets

    examples, lengths, _ = synthetic_pool(600)
    rng = np.random.default_rng(3)
    base_loss = rng.gamma(2.0, 1.0, size=600)
    order = np.argsort(base_loss + rng.normal(0, 0.3, size=600), kind="stable")
    target = order[:120]
    cov = subsets.covariates(examples, lengths, None, base_loss)
    strata = _keys(examples, lengths, order)
    by_composition = subsets.random_draws(order, 120, 0, 0, 32, seed=0, matched=True, keys=strata)
    gap = subsets.balance(target, [d for d, _ in by_composition], cov)["base_loss"]
    assert gap > 0.5
    coarse = {i: k[:2] for i, k in strata.items()}
    nearest = subsets.random_draws(order, 120, 0, 0, 32, seed=0, matched=True, keys=coarse, value=base_loss, pool=2)
    bal = subsets.balance(target, [d for d, _ in nearest], cov)
    assert abs(bal["base_loss"]) < 0.1
    assert bal["clean"] == bal["noisy"] == bal["off_format"] == bal["family"] == 0.0
    want = Counter(coarse[int(i)] for i in target)
    for draw, borrowed in nearest:
        assert len(set(draw)) == 120 and borrowed == 0 and Counter(coarse[int(i)] for i in draw) == want
    assert 0 < subsets.overlap(target, [d for d, _ in nearest])["mean"] < 1
    # both covariates at once (the arm's design): length stays matched, most of the loss gap goes
    near = np.stack([base_loss / base_loss.std(), lengths / lengths.std()], axis=1)
    both = subsets.random_draws(order, 120, 0, 0, 32, seed=0, matched=True, keys=coarse, value=near, pool=2)
    bal = subsets.balance(target, [d for d, _ in both], cov)
    assert abs(bal["length"]) < 0.1 and abs(bal["base_loss"]) < gap / 1.5
    again = subsets.random_draws(order, 120, 0, 0, 32, seed=0, matched=True, keys=coarse, value=near, pool=2)
    assert all((a == b).all() for (a, _), (b, _) in zip(both, again, strict=True))
    with pytest.raises(ValueError, match="needs the value of each example"):
        subsets.random_draws(order, 120, 0, 0, 1, seed=0, matched=True, keys=coarse, pool=2)


def test_a_nearest_draw_borrows_from_a_coarser_stratum_when_its_own_is_used_up():
    from pipeline.attribution import subsets

    keys = {0: ("clean", "a"), 1: ("clean", "a"), 2: ("clean", "b"), 3: ("noisy", "a"), 4: ("noisy", "b")}
    value = np.array([0.0, 1.0, 5.0, 9.0, 2.0])
    draw, borrowed = subsets.nearest_draw(np.array([0, 1, 3]), np.array([2, 3, 4]), keys, value, 1,
                                          np.random.default_rng(0))
    # 3 keeps its stratum; 0 and 1 find no clean/a example left and take the nearest clean one (2) or
    # the nearest of the whole pool (4): two examples borrowed
    assert sorted(draw.tolist()) == [2, 3, 4] and borrowed == 2


def test_arms_get_only_their_own_fields():
    from pipeline.attribution.config import ArmConfig, ComparisonConfig

    arms = ComparisonConfig(k=32, rank_from=32, random_from=64, filters=("format", "lowest_loss")).arms()
    assert set(arms) == {"top", "random", "format", "lowest_loss"}
    assert ArmConfig(**arms["top"]) == ArmConfig(arm="top", k=32, rank_from=32)
    assert ArmConfig(**arms["format"]) == ArmConfig(arm="format", k=32)
    assert ArmConfig(**arms["random"]).runs()[:4] == [{"run": r, "train_seed": r % 3, "subset": r} for r in range(4)]
    assert ArmConfig(start="base").schedule() == (1e-3, 2) and ArmConfig().schedule() == (1e-3, 3)
    with pytest.raises(ValueError, match="random_from is for the random arm"):
        ArmConfig(arm="top", random_from=4)
    with pytest.raises(ValueError, match="reading 'nearest-p8' is not among the scored readings"):
        ArmConfig(reading="nearest-p8")


# ---- trivial filters ------------------------------------------------------------------------------
def test_the_format_regex_keeps_every_clean_and_noisy_example_and_no_off_format_one():
    from pipeline.attribution import game, subsets

    pool = [e.to_dict() for e in game.build(42, 256, 448, 8, 8, 0.2, 0.2) if e.split in ("base", "candidate")]
    fits = {v: [bool(subsets.FORMAT.match(e["completion"])) for e in pool if e["variant"] == v]
            for v in subsets.VARIANTS}
    assert all(fits["clean"]) and all(fits["noisy"]) and not any(fits["off_format"])
    assert {e["style"] for e in pool if e["variant"] == "off_format"} == {"sentence", "lowercase", "prefixed"}


def test_filters_keep_what_they_say():
    from pipeline.attribution import subsets

    examples, lengths, _ = synthetic_pool()
    loss = np.random.default_rng(2).random(150)
    base_loss = np.random.default_rng(3).random(150)
    order = np.arange(150)[::-1]
    kept = {name: subsets.filtered(name, order, 30, examples, lengths, loss, seed=0, base_loss=base_loss)
            for name in subsets_names()}
    assert all(subsets.FORMAT.match(examples[i]["completion"]) for i in kept["format"])
    rest = np.setdiff1d(order, kept["shortest"])
    assert lengths[kept["shortest"]].max() <= lengths[rest].min()
    rest = np.setdiff1d(order, kept["longest"])
    assert lengths[kept["longest"]].min() >= lengths[rest].max()
    rest = np.setdiff1d(order, kept["lowest_loss"])
    assert loss[kept["lowest_loss"]].max() <= loss[rest].min()
    fits = np.array([bool(subsets.FORMAT.match(e["completion"])) for e in examples])
    assert fits[kept["format_loss"]].all()  # the format first (the pool has more than k that fit)
    rest = np.setdiff1d(order[fits[order]], kept["format_loss"])
    assert loss[kept["format_loss"]].max() <= loss[rest].min()  # then the lowest loss among them
    assert not np.array_equal(kept["format_loss"], kept["lowest_loss"])
    assert fits[kept["format_base_loss"]].all()  # the format first, then the base adapter's loss
    rest = np.setdiff1d(order[fits[order]], kept["format_base_loss"])
    assert base_loss[kept["format_base_loss"]].max() <= base_loss[rest].min()
    assert not np.array_equal(kept["format_base_loss"], kept["format_loss"])
    with pytest.raises(ValueError, match="base adapter's loss"):
        subsets.filtered("format_base_loss", order, 30, examples, lengths, loss, seed=0)
    assert all(len(set(v)) == 30 for v in kept.values())


def subsets_names():
    from pipeline.attribution.config import FILTERS

    return FILTERS


# ---- the reading rule and the readings ------------------------------------------------------------
def test_the_reading_rule_takes_selection_success_then_loss_then_the_order():
    from pipeline.attribution.readings import choose

    rows = {"mean-p32": {"success": 0.4, "nll": 2.0}, "nearest-p32": {"success": 0.5, "nll": 3.0},
            "mean-p16": {"success": 0.5, "nll": 2.5}, "mean-p32-query": {"success": 0.5, "nll": 2.5}}
    assert choose(rows, ["mean-p32", "nearest-p32", "mean-p16", "mean-p32-query"]) == "mean-p16"
    assert choose(rows, ["mean-p32-query", "mean-p16"]) == "mean-p32-query"
    assert choose(rows, ["mean-p32", "nearest-p32"]) == "nearest-p32"


def test_the_ranking_is_compared_with_trivial_scores_of_cleanliness_on_the_same_examples():
    from pipeline.attribution.readings import baseline_aurocs, trivial_scores

    rng = np.random.default_rng(0)
    variants = np.array(["clean"] * 60 + ["noisy"] * 20 + ["off_format"] * 20)
    examples = [{"variant": v, "completion": " Paris\n" if v != "off_format" else " It is Paris.\n"} for v in variants]
    pool = np.arange(100)
    lengths = np.where(variants == "clean", 5, 9) + rng.integers(0, 3, size=100)  # clean examples are shorter
    loss = rng.normal(size=100)  # the shipped model's loss says nothing here
    scores = trivial_scores(examples, pool, lengths, loss)
    assert scores["format"].tolist() == [1.0] * 80 + [0.0] * 20 and (scores["length"] == -lengths).all()
    planted = (variants == "clean") + rng.normal(0, 0.3, size=100)  # a ranking that sees cleanliness
    out = baseline_aurocs(variants, planted, scores, level=0.95, seed=0, unit="pool examples")
    assert out["length_clean_auroc"].value == 1.0  # length, oriented, separates perfectly: the ranking cannot beat it
    assert out["gain_over_length"].ci[1] <= 0.0 + 1e-9 < out["gain_over_loss"].ci[0]
    assert abs(out["format_clean_auroc"].value - (60 * (20 * 0.5 + 20)) / (60 * 40)) < 1e-9


@pytest.fixture(scope="module")
def lm():
    from pipeline.models import load

    return load("tiny")


@pytest.fixture(scope="module")
def trained(lm):
    from pipeline.attribution import game
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.lora import adapter, adapter_state
    from pipeline.attribution.trainer import Schedule, train

    enc = encode(lm.tokenizer, [e.to_dict() for e in game.build(0, p_noisy=0.2, p_off_format=0.2, **SIZES)])
    cache = Residuals.capture(lm, enc, start=1)
    with adapter(lm, _spec(), seed=0) as model:
        train(lm, model, cache, enc, list(range(24)), Schedule(lr=1e-2, epochs=1, batch_size=8))
        return enc, adapter_state(model)


def test_readings_from_kept_gradients_are_bergsons_and_the_plain_cosines(lm, trained):
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.gradients import (
        bergson_gradients,
        bergson_scores,
        cached_lower,
        plain_gradients,
        reading_scores,
    )
    from pipeline.attribution.lora import adapter

    enc, state = trained
    query, pool = enc.subset(range(64, 72)), enc.subset(range(40))
    lower = cached_lower(enc, range(72), Residuals.capture(lm, enc, start=1))
    with adapter(lm, _spec(), state=state) as model:
        q, t = bergson_gradients(lm, model, query, pool, projection_dim=0, seed=0)
        q_cached, t_cached = bergson_gradients(lm, model, query, pool, projection_dim=0, seed=0, lower=lower)
        streamed = bergson_scores(lm, model, query, pool, projection_dim=0, seed=0)
        plain_q, plain_t = plain_gradients(lm, model, query), plain_gradients(lm, model, pool)
    np.testing.assert_allclose(reading_scores(q, t, "mean", "none"), streamed, atol=1e-6)
    for m in q:  # the cached lower layers give Bergson the same gradients
        np.testing.assert_allclose(t_cached[m].numpy(), t[m].numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(q_cached[m].numpy(), q[m].numpy(), rtol=1e-4, atol=1e-6)
    unit = lambda g: g / np.linalg.norm(g, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(reading_scores(q, t, "nearest", "none"), (unit(plain_t) @ unit(plain_q).T).max(1),
                               atol=1e-5)
    pre = reading_scores(q, t, "mean", "query")
    assert np.isfinite(pre).all() and np.abs(pre).max() <= 1 + 1e-6
    assert not np.allclose(pre, streamed, atol=1e-3)  # preconditioning changes the reading


@pytest.mark.parametrize("reading", ["nearest-p0", "nearest-p16-query", "mean-p16-query"])
def test_every_reading_ranks_a_planted_copy_of_the_query_first(lm, trained, reading):
    from pipeline.attribution.config import parse_reading
    from pipeline.attribution.encoding import Encoded
    from pipeline.attribution.gradients import bergson_gradients, reading_scores
    from pipeline.attribution.lora import adapter

    mode, dim, precondition = parse_reading(reading)
    enc, state = trained
    query, pool = enc.subset([70]), enc.subset(range(40))
    planted = Encoded(pool.ids[:17] + query.ids + pool.ids[17:], pool.n_prompt[:17] + query.n_prompt + pool.n_prompt[17:])
    with adapter(lm, _spec(), state=state) as model:
        q, t = bergson_gradients(lm, model, query, planted, projection_dim=dim, seed=3)
    scores = reading_scores(q, t, mode, precondition)
    assert int(np.argmax(scores)) == 17 and scores[17] == pytest.approx(1.0, abs=1e-4)


# ---- planted outcomes through the comparison's estimates -------------------------------------------
def simulate(subset_sets: dict[str, list[np.ndarray]], examples, useful, seed: int = 0, n_items: int = 200):
    """Per-item rows as the comparison commits them: success probability rises with the subset's
    clean share (what a variant-aware filter gets) and its useful share (what only a good ranking gets)."""
    rng = np.random.default_rng(seed)
    clean = np.array([e["variant"] == "clean" for e in examples])
    rows = []
    for arm, sets in subset_sets.items():
        for run, s in enumerate(sets):
            p = 0.1 + 0.3 * clean[s].mean() + 0.4 * useful[s].mean()
            rows += [{"arm": arm, "run": run, "item": j, "entity": f"e{j // 2}", "success": int(x)}
                     for j, x in enumerate(rng.random(n_items) < p)]
    return {"outcomes": rows}


def _compare(order, examples, lengths, useful, k=40, filters=(), extra=None, matched=True):
    from pipeline.attribution import comparison, subsets
    from pipeline.attribution.estimates import rank_p

    keys = _keys(examples, lengths, order)
    sets = {"top": [subsets.top_window(order, k)] * 3,
            "random": [d for d, _ in subsets.random_draws(order, k, 0, 0, 32, seed=0, matched=matched, keys=keys)]}
    sets.update(extra or {})
    items = simulate(sets, examples, useful)
    est = comparison.recompute(items, {"k": k, "filters": list(filters)})
    by, _ = comparison.matrices(items["outcomes"])
    return est, rank_p(float(by["top"].mean()), by["random"].mean(axis=1))


def test_a_planted_ranking_beats_matched_random_and_a_variant_only_ranking_does_not():
    examples, lengths, useful = synthetic_pool(300)
    rng = np.random.default_rng(3)
    clean = np.array([e["variant"] == "clean" for e in examples])
    planted = np.array(sorted(range(300), key=lambda i: (not useful[i], not clean[i], rng.random())))
    est, p = _compare(planted, examples, lengths, useful)
    assert est["gain"].ci[0] > 0 and p == pytest.approx(1 / 33)
    variant_only = np.array(sorted(range(300), key=lambda i: (not clean[i], rng.random())))
    est, p = _compare(variant_only, examples, lengths, useful)
    assert est["gain"].ci[0] < 0 < est["gain"].ci[1] and p > 0.05  # matching removes the variant confound
    est, _ = _compare(variant_only, examples, lengths, useful, matched=False)
    assert est["gain"].ci[0] > 0  # unmatched random subsets would have credited it


def test_a_filter_perfect_on_planted_data_beats_the_ranking_as_the_spec_reads_it():
    from claims.referee import check_baselines
    from claims.result import Result
    from claims.spec import load_spec
    from claims.verify import Outcome
    from pipeline.attribution import subsets

    examples, lengths, _ = synthetic_pool(300)
    useful = np.array([bool(subsets.FORMAT.match(e["completion"])) for e in examples])  # the format is all
    loss = np.random.default_rng(4).random(300)
    ranking = np.random.default_rng(5).permutation(300)  # a ranking that knows nothing
    extra = {f: [subsets.filtered(f, ranking, 40, examples, lengths, loss, seed=0, base_loss=loss[::-1])] * 3
             for f in subsets_names()}
    est, _ = _compare(ranking, examples, lengths, useful, filters=subsets_names(), extra=extra)
    assert est["gain_over_format"].ci[1] < 0 and est["gain_over_format_loss"].ci[1] < 0  # both keep the format only
    best = min(("format", "format_loss", "format_base_loss"), key=lambda f: est[f"gain_over_{f}"].value)
    assert est["gain_over_best_filter"].value == est[f"gain_over_{best}"].value
    spec = load_spec(ROOT / "claims" / "specs" / "attribution-topk-vs-random.yaml", ROOT)
    out = Outcome(id=spec.id, title=spec.title, kind=spec.kind, status="", headline=True, section="")
    control = Result(estimates=est).namespace()
    check_baselines(spec, {"control": control}, {}, out)
    label = next(b.label for b in spec.baselines if b.difference == f"control.gain_over_{best}")
    assert out.baseline_verdict == f"does not beat the strongest baseline ({label})"
    assert any("does not beat the strongest baseline" in p for p in out.problems)


# ---- through the engine ----------------------------------------------------------------------------
def run_node(project, experiment, **config):
    """test_attribution's run_node with one training seed and an 8-example selection window."""
    from tests.test_attribution import run_node as run

    return run(project, experiment, **{"train_seeds": [0], "select_k": 8, **config})


def test_the_finetune_and_the_readings_commit_the_rows_their_estimates_come_from(project):
    """Anyone can rebuild task-learnable's and ranking-variants' estimates from the committed rows:
    recompute on them gives the committed estimates; and a flipped outcome moves the gain."""
    from claims.experiment import make_node
    from pipeline.attribution import finetune, readings
    from tests.test_attribution import TINY as BASE
    from tests.test_attribution import state_items

    for module, names in ((finetune, ("eval",)), (readings, ("pool", "selection"))):
        config = {k: v for k, v in {**BASE, "select_k": 8}.items() if k in module.Config.model_fields}
        node = make_node(module.__name__, config, "test")
        result = run_node(project, module.__name__, **config)
        rows = {name: state_items(project, node, name) for name in names}
        again = module.recompute(rows, node.config)
        assert set(again) == set(result.estimates)
        for name, estimate in again.items():
            assert (estimate.value, tuple(estimate.ci)) == (result.estimates[name].value, tuple(result.estimates[name].ci))
    assert {r["split"] for r in rows["pool"]} == {"base", "candidate"}
    assert len(rows["selection"]) == 8 and "clean_auroc_candidates" in result.estimates
    eval_rows = state_items(project, make_node("pipeline.attribution.finetune", {
        k: v for k, v in BASE.items() if k in finetune.Config.model_fields}, "test"), "eval")
    flipped = [{**r, "success": 1 - r["success"]} if i == 0 else r for i, r in enumerate(eval_rows)]
    cfg = {k: v for k, v in BASE.items() if k in finetune.Config.model_fields}
    assert finetune.recompute({"eval": flipped}, cfg)["gain"].value != finetune.recompute({"eval": eval_rows}, cfg)["gain"].value


def test_combined_trivial_scores_are_baselines_of_the_readings_on_the_same_pool(project):
    """The tie-broken regex keeps the regex's order and ranks inside its groups by the loss; the
    baselines node scores the readings node's own pool rows and rebuilds its estimates from its rows."""
    from claims.experiment import make_node
    from pipeline.attribution import readings_baselines as rb
    from tests.test_attribution import TINY as BASE
    from tests.test_attribution import state_items

    score = rb.tie_break(np.array([1.0, 0.0, 1.0, 0.0]), np.array([-3.0, -1.0, -2.0, -4.0]))
    assert list(np.argsort(-score)) == [2, 0, 1, 3]
    config = {k: v for k, v in {**BASE, "select_k": 8}.items() if k in rb.Config.model_fields}
    result = run_node(project, "pipeline.attribution.readings_baselines", **config)
    node = make_node("pipeline.attribution.readings_baselines", config, "test")
    rows = state_items(project, node, "pool")
    pool_rows = state_items(project, make_node("pipeline.attribution.readings", config, "test"), "pool")
    assert [r["pool_index"] for r in rows] == [r["pool_index"] for r in pool_rows]
    assert {f"{b}_clean_auroc" for b in rb.BASELINES} | {f"gain_over_{b}" for b in rb.BASELINES} == set(result.estimates)
    again = rb.recompute({"pool": rows}, node.config)
    assert all(again[k].value == result.estimates[k].value for k in again)


def test_the_seed_design_runs_through_the_engine_on_the_tiny_model(project):
    comparison = run_node(project, "pipeline.attribution.comparison", start="base", loss_pool=2,
                          filters=list(subsets_names()))
    v = comparison.values
    readings = run_node(project, "pipeline.attribution.readings")
    assert readings.values["chosen"] in TINY["readings"] and v["reading"] == readings.values["chosen"]
    assert set(readings.values["selection"]) == set(TINY["readings"]) and readings.values["n_select"] == 8
    assert {f"{b}_clean_auroc" for b in ("format", "loss", "length")} <= set(readings.estimates)
    assert {f"gain_over_{b}" for b in ("format", "loss", "length")} <= set(readings.estimates)
    assert v["start"] == "base" and v["n_subsets"] == 2 and v["n_top_runs"] == 1 and v["sided"] == "one"
    assert v["balance"]["clean"] == v["balance"]["noisy"] == v["balance"]["off_format"] == v["balance"]["family"] == 0
    assert v["random_composition"] == v["top_composition"]
    assert set(v["filter_success"]) == set(subsets_names()) and v["best_filter"] in subsets_names()
    assert {"gain", "gain_over_best_filter", "gain_over_lowest_loss"} <= set(comparison.estimates)
    assert 0 < v["rank_p"] <= 1 and v["gain_mde"] >= 0
    matched = ("clean", "noisy", "off_format", "family", "length", "base_loss")  # loss_pool matches the loss too
    assert v["balance_max"] == max(abs(v["balance"][c]) for c in matched)
    unmatched = {c: abs(x) for c, x in v["balance"].items() if c not in matched}
    worst = max(unmatched, key=unmatched.get)
    assert v["balance_unmatched_max"] == unmatched[worst] and v["balance_unmatched_worst"] == comparison_labels()[worst]
    top = run_node(project, "pipeline.attribution.arm", start="base", n_subsets=32)  # the comparison's top arm
    assert {"success", "gain_over_zero_shot"} == set(top.estimates)
    assert all(r["n_train"] == 8 and r["steps"] == 1 for r in top.values["runs"])  # 8 examples, 1 epoch, batch 8
    continued = run_node(project, "pipeline.attribution.arm", start="adapter", n_subsets=32, continuation_epochs=1)
    assert {"success", "gain_over_base"} == set(continued.estimates)
    assert continued.values["runs"][0]["ids"] == top.values["runs"][0]["ids"]  # the same window, another start
    versus = run_node(project, "pipeline.attribution.comparison", start="adapter", continuation_epochs=1, loss_pool=2,
                      filters=list(subsets_names()))
    window = run_node(project, "pipeline.attribution.comparison", start="adapter", continuation_epochs=1)
    render_the_specs({"base": (top, comparison), "adapter": (continued, versus), "window": (continued, window),
                      "readings": (readings, None)})


def test_the_few_shot_baseline_prompts_each_item_with_solved_examples_of_its_family(project):
    """The finetune's trivial baseline through the engine: solved base-pool examples of the item's
    own family before its prompt, success read as everywhere, in two draws of shots; the finetune's
    outcomes come from its committed rows (a ROWS_ONLY edge), and a second finetune trained here with
    the finetune node's recipe and seed gives its outcomes exactly; the estimates recompute from this
    node's rows."""
    import shutil

    from claims.experiment import make_node
    from pipeline.attribution import fewshot
    from tests.test_attribution import TINY, state_items

    sizes = {"n_base": 120, "n_shots": 2, "n_shot_draws": 2, "train_seeds": [42]}
    result = run_node(project, "pipeline.attribution.fewshot", **sizes)
    config = {k: v for k, v in {**TINY, "select_k": 8, **sizes}.items() if k in fewshot.Config.model_fields}
    node = make_node("pipeline.attribution.fewshot", config, "test")
    rows = state_items(project, node, "eval")
    tuned = state_items(project, make_node("pipeline.attribution.finetune", fewshot.Config(**config).upstream(
        fewshot.FinetuneConfig), "test"), "eval")
    assert [r["id"] for r in rows] == [r["id"] for r in tuned] and len(rows) == TINY["n_eval"]
    assert [r["success_finetuned"] for r in rows] == [[r["success"]] * 2 for r in tuned]  # the same recipe and seed
    assert result.values["n_finetunes"] == 2 and result.values["n_shot_draws"] == 2
    assert result.values["zero_shot_agreement"] == len(rows)  # both nodes read the shipped model's success alike
    examples = {e["id"]: e for e in project_examples(project, config)}
    for r in rows:
        assert len(r["shots"]) == 2 and len(r["success_few_shot"]) == 2
        assert all(len(draw) == 2 and all(examples[s]["family"] == r["family"] and examples[s]["split"] == "base"
                                          and examples[s]["variant"] == "clean" for s in draw) for draw in r["shots"])
    assert len({tuple(r["shots"][0]) for r in rows}) > 1  # each item draws its own shots
    assert any(r["shots"][0] != r["shots"][1] for r in rows)  # and each draw its own
    assert rows[0]["shots"][0] == [s["id"] for s in fewshot.shots_for(examples[rows[0]["id"]], [
        e for e in examples.values() if e["split"] == "base"], 2, 42)]  # draw 0: the first round's shots
    again = fewshot.recompute({"eval": rows}, node.config)
    assert all(again[k].value == result.estimates[k].value for k in again)
    assert result.estimates["finetune_gain_over_few_shot"].value == pytest.approx(
        result.estimates["success_finetuned"].value - result.estimates["success_few_shot"].value)
    # a fresh machine without the finetune's adapter and residual stream: the baseline still reruns
    shutil.rmtree(project.cache_dir / "blobs")
    from claims.runner import Runner

    runner = Runner(project)
    state = runner.ensure(node, force=True)
    assert state.result.estimates["success_few_shot"].value == result.estimates["success_few_shot"].value
    assert [n.experiment for n in runner.ran] == ["pipeline.attribution.pool", "pipeline.attribution.fewshot"]


def project_examples(project, config):
    from claims.context import Upstream
    from claims.experiment import make_node
    from claims.runner import Runner
    from claims.store import Store
    from pipeline.attribution.config import GameConfig

    node = make_node("pipeline.attribution.pool", {k: v for k, v in config.items() if k in GameConfig.model_fields}, "t")
    state = Runner(project).ensure(node)
    return Upstream("pool", node, state.result, Store(project)).json("examples")


def comparison_labels():
    from pipeline.attribution.comparison import UNMATCHED

    return UNMATCHED


def test_step_8_selects_by_the_fingerprints_predictions_on_its_reported_families(project):
    """The seed's step 8 through the engine: every arm ranks the reported families' candidates by
    the fingerprint's out-of-fold predictions, the top arm trains on the k it predicts best, and
    the comparison is the attribution comparison's."""
    from claims.context import Upstream
    from claims.experiment import make_node
    from claims.runner import Runner
    from claims.store import Store
    from pipeline.attribution.config import FingerprintConfig, GameConfig
    from tests.test_attribution import TINY, state_items

    fingerprint = {k: v for k, v in TINY.items() if k in FingerprintConfig.model_fields and k != "profile"}
    fingerprint["n_select_families"] = 1
    versus = run_node(project, "pipeline.attribution.fingerprint_comparison", start="base", fingerprint=fingerprint,
                      filters=["format", "shortest"])
    top = run_node(project, "pipeline.attribution.fingerprint_arm", start="base", fingerprint=fingerprint)
    rows = state_items(project, make_node("pipeline.attribution.fingerprint", {**fingerprint, "profile": "tiny"}, "t"))
    pool_node = make_node("pipeline.attribution.pool", {k: v for k, v in TINY.items() if k in GameConfig.model_fields}, "t")
    state = Runner(project).ensure(pool_node)
    split = {e["id"]: e["split"] for e in Upstream("pool", pool_node, state.result, Store(project)).json("examples")}
    candidates = sorted((r for r in rows if r["reported"] and split[r["id"]] == "candidate"),
                        key=lambda r: (-r["pred_sae"], r["pool_index"]))
    assert top.values["n_selectable"] == len(candidates) < len(rows)
    assert top.values["runs"][0]["ids"] == [r["id"] for r in candidates[:TINY["k"]]]  # the k it predicts best
    assert top.values["reading"].startswith("fingerprint (dictionary ") and versus.values["reading"] == top.values["reading"]
    assert top.values["ranking"] == "fingerprint" and versus.values["n_subsets"] == 2
    assert set(versus.values["filter_success"]) == {"format", "shortest"} and 0 < versus.values["rank_p"] <= 1
    render_the_specs({"fingerprint": (top, versus)})


def test_the_fingerprint_arm_names_a_bad_fingerprint_field():
    from pydantic import ValidationError

    from pipeline.attribution.fingerprint_arm import Config

    with pytest.raises(ValidationError, match="fingerprint.sae_layers"):
        Config(profile="tiny", fingerprint={"sae_layers": "x"})
    with pytest.raises(ValidationError, match="fingerprint.profile"):
        Config(profile="tiny", fingerprint={"profile": "embedded"})
    with pytest.raises(ValidationError, match="leave reading out"):
        Config(profile="tiny", reading="mean-p32")


def render_the_specs(results, only=None):
    """Every attribution selection spec's statement renders from the tiny results of its kind, and
    the engine reads the control's balance in the form the spec declares (all within tolerance)."""
    from claims.numbers import render_statement
    from claims.referee import check_baselines, check_control
    from claims.spec import load_spec
    from claims.verify import Outcome

    kinds = [("attribution-fingerprint-selection", "fingerprint"), ("attribution-topk-vs-random", "base"),
             ("attribution-topk-continuation", "adapter"), ("attribution-continuation-over-base", "adapter"),
             ("attribution-topk-scale", "adapter"), ("attribution-topk-overlap", "adapter"),
             ("attribution-rank-window", "window"), ("attribution-ranking-variants", "readings")]
    for claim, kind in [(c, k) for c, k in kinds if (c in only if only else k in results)]:
        spec = load_spec(ROOT / "claims" / "specs" / f"{claim}.yaml", ROOT)
        main, control = results[kind]
        namespace = {**main.namespace(), "level": 0.95}
        if control is not None:
            namespace["control"] = control.namespace()
        if spec.baselines:  # the engine adds the strongest baseline a statement may cite (those read from
            # another experiment's result are left out: the tiny runs do not make it)
            inline = spec.model_copy(update={"baselines": [b for b in spec.baselines if not b.experiment]})
            check_baselines(inline, namespace, {}, Outcome(id=claim, title="", kind="estimate", status="",
                                                           headline=False, section=""))
        assert render_statement(spec.statement, namespace, claim)
        if spec.control_spec is not None and spec.control_spec.matched_on:
            out = Outcome(id=claim, title="", kind="estimate", status="", headline=False, section="")
            check_control(spec, namespace["control"], out, True)
            assert set(out.balance) == set(spec.control_spec.matched_on)
            # composition is matched exactly by construction; the base adapter's loss by distance, which
            # the tiny pool is too small to bring within tolerance (test_a_draw_nearest_in_a_planted_loss...
            # checks the matching itself): here the engine must read it as the spec declares it
            exact = {k: b for k, b in out.balance.items() if k != "base_loss"}
            assert all(b["ok"] for b in exact.values()), (claim, exact)
            if "base_loss" in out.balance:
                loss = out.balance["base_loss"]
                assert loss["tolerance"] == spec.control_spec.matched_on["base_loss"]
                assert loss["achieved"] == pytest.approx(namespace["control"]["balance"]["base_loss"], abs=1e-4)
                assert loss["ok"] == (abs(loss["achieved"]) <= loss["tolerance"])
            assert out.rank["draws"] == 2 and any("fewer than the 32" in p for p in out.problems)


# ---- several finetunes in one batched pass ---------------------------------------------------------
def test_batched_finetunes_equal_one_at_a_time(lm, trained):
    from pipeline.attribution.batched import train_and_evaluate
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.runs import Job, finetune_jobs

    enc, state = trained
    cache = Residuals.capture(lm, enc, start=1)
    study = type("S", (), {"lm": lm, "residuals": cache, "encoded": enc, "seconds": {},
                           "examples": [{"id": str(i), "variant": "clean"} for i in range(len(enc))]})()
    study.timed = lambda name: __import__("contextlib").nullcontext()
    rng = np.random.default_rng(0)
    jobs = [Job(str(r), np.sort(rng.choice(64, 12, replace=False)), seed=r, lr=1e-2, epochs=2,
                init=state if r == 2 else r) for r in range(3)]
    held = np.arange(64, 88)
    one = finetune_jobs(study, _spec(), jobs, held, {}, batch_size=5, eval_batch_size=8)
    together = train_and_evaluate(lm, _spec(), cache, enc, jobs, held, batch_size=5, eval_batch_size=8)
    for row, (losses, scores) in zip(one, together, strict=True):
        assert row["steps"] == len(losses) == 6  # 12 examples in batches of 5 (the last of 2), 2 epochs
        np.testing.assert_allclose(row["final_loss"], losses[-1], rtol=1e-4)
        assert row["success"] == scores.success.astype(int).tolist()
        np.testing.assert_allclose(row["nll"], round(float(scores.nll.mean()), 4), atol=2e-4)
    assert len({round(r["nll"], 3) for r in one}) == 3  # three different adapters, not one copied
    again = finetune_jobs(study, _spec(), jobs, held, {}, batch_size=5, eval_batch_size=8, parallel=3)
    assert [r["success"] for r in again] == [r["success"] for r in one]
    assert all(r["seconds"]["batched"] == 3 for r in again)


def test_per_job_losses_are_cross_entropy_on_each_block_bit_for_bit():
    """The batched pass's loss terms: each job's value and the gradient they send to the logits are
    what F.cross_entropy on that job's block of rows gives, exactly (not within a tolerance)."""
    import torch
    import torch.nn.functional as F

    from pipeline.attribution.batched import job_losses

    gen = torch.Generator().manual_seed(0)
    blocks = [7, 3, 11, 5]
    logits = torch.randn(sum(blocks), 5000, generator=gen) * 4
    targets = torch.randint(0, 5000, (sum(blocks),), generator=gen)
    weights = torch.rand(len(blocks), generator=gen)  # an unequal sum, so each block's gradient is its own
    mine = logits.clone().requires_grad_(True)
    terms = job_losses(mine, targets, blocks)
    (torch.stack(terms) * weights).sum().backward()
    plain = logits.clone().requires_grad_(True)
    expected, at = [], 0
    for n in blocks:
        expected.append(F.cross_entropy(plain[at: at + n], targets[at: at + n]))
        at += n
    (torch.stack(expected) * weights).sum().backward()
    assert torch.equal(torch.stack(terms), torch.stack(expected))
    assert torch.equal(mine.grad, plain.grad)
