"""The SAE study end to end on the tiny model, through the engine's runner: corpus, SAEs,
reconstruction (and its PCA control), extraction, ranking with feature-page data, the shuffled-label
control; and the thesis test on the detection and steering chains with planted generations: the
SAE-feature detector against the neuron probe, the log-probability baseline and matched random
latents, and SAE-feature steering through the decoded delta against H-neuron scaling and matched
random latents."""

from __future__ import annotations

import numpy as np
import pytest

from tests.saecorpus import write_tree
from tests.test_steering_chain import DETECTION, detection_settings
from tests.test_steering_chain import project as steering_project  # noqa: F401  (a fixture)
from tests.test_steering_chain import run as run_node

SAE = {"train_sequences": 48, "heldout_sequences": 8}


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "debian")


def test_the_feature_chain_runs_on_the_tiny_model(steering_project, tree):  # noqa: F811
    common = {"profile": "tiny", "root": str(tree), **SAE}
    rec = run_node(steering_project, "pipeline.saefeatures.reconstruction", **common)
    pca = run_node(steering_project, "pipeline.saefeatures.reconstruction", **common, dictionary="pca")
    assert rec.values["layers"] == [0, 1] and rec.values["heldout_tokens"] == 8 * 31
    assert 0 < rec.estimates["ev_min"].value <= 1 and rec.estimates["l0_0"].value <= 4
    assert pca.estimates["dead_0"].value == 0 and pca.values["ranks"] == rec.values["ranks"]
    assert rec.estimates["flr_min"].value == min(rec.estimates[f"flr_{i}"].value for i in (0, 1))
    assert [p["flr"] for p in rec.values["per_layer"]] == [rec.estimates[f"flr_{i}"].value for i in (0, 1)]
    ranking = run_node(steering_project, "pipeline.saefeatures.ranking", **common, concept="kindness")
    values = ranking.values
    assert values["n_sentences"] == 200 and values["n_per_label"] == [50, 50, 50, 50]
    assert values["split"] == "by set" and values["n_sets"] == 50
    est = ranking.estimates
    # the sets are length-matched under Gemma's tokenizer (exactly 0 there); the tiny model counts bytes
    assert abs(est["length_spearman"].value) < 0.1
    assert est["heldout_gain_over_bow"].value == pytest.approx(est["heldout_spearman"].value - est["bow_spearman"].value)
    assert est["heldout_gain_over_tfidf"].value == pytest.approx(
        est["heldout_spearman"].value - est["tfidf_spearman"].value)
    assert -1 <= est["partial_given_text"].value <= 1
    assert values["n_splits"] == 20 and values["split_heldout_min"] <= values["split_heldout_mean"] <= values[
        "split_heldout_max"] and 0 <= values["split_same_latent_share"] <= 1
    assert est["specificity_gap"].value == pytest.approx(est["heldout_spearman"].value - max(
        est[f"other_spearman_{c}"].value for c in values["other_concepts"]))
    assert values["n_features"] == 128 and len(values["features"]) == 5
    top = values["features"][0]
    assert top["id"] == values["top_feature"] and top["spearman"] == pytest.approx(ranking.estimates["top_spearman"].value)
    assert top["sentences"][0]["tokens"] and all(len(t) == 2 for t in top["sentences"][0]["tokens"])
    assert top["neuronpedia"] is None  # trained SAEs have no Neuronpedia id
    shuffled = run_node(steering_project, "pipeline.saefeatures.shuffled", **common, concept="kindness", n_shuffles=50)
    assert shuffled.values["observed_heldout"] == pytest.approx(est["heldout_spearman"].value)
    assert 1 / 51 <= shuffled.values["rank_p"] <= 1 and len(shuffled.values["null_histogram"]) == 20
    assert shuffled.values["balance"]["length"] < 0.1  # within-set shuffles: tiny's byte counts differ a little
    length = run_node(steering_project, "pipeline.saefeatures.length", **common)
    assert {f"length_spearman_{c}" for c in ("dishonesty", "kindness")} <= set(length.estimates)
    assert length.estimates["heldout_partial_min"].value == min(
        length.estimates[f"heldout_partial_{c}"].value for c in length.values["concepts"])


def test_the_sweeps_reconstruction_gives_reconstruction_pys_numbers_and_a_mean_ablation_floor(steering_project, tree):  # noqa: F811
    """sweep_reconstruction reads the loss clean and ablated from one floor node and runs each splice
    from its layer: every estimate reconstruction.py makes comes back identical (bit for bit), for the
    SAEs and the PCA; the fraction against mean-ablation is read between the same ends as the
    zero-ablation one and recomputes from the committed rows."""
    common = {"profile": "tiny", "root": str(tree), **SAE}
    for dictionary in ("sae", "pca"):
        old = run_node(steering_project, "pipeline.saefeatures.reconstruction", **common, dictionary=dictionary)
        new = run_node(steering_project, "pipeline.saefeatures.sweep_reconstruction", **common, dictionary=dictionary)
        assert {k: (e.value, e.ci) for k, e in old.estimates.items()} == {
            k: (new.estimates[k].value, new.estimates[k].ci) for k in old.estimates}
    floor = run_node(steering_project, "pipeline.saefeatures.floor", **common)
    assert floor.values["n_layers"] == 2 and floor.values["loss_sequences"] == 8
    est = new.estimates
    for i in (0, 1):
        # the floor's mean-ablated loss is what the fraction is read against
        assert est[f"ce_mean_delta_{i}"].value == pytest.approx(floor.values["ce_mean"][i] - floor.values["ce_clean"])
        assert est[f"flr_mean_{i}"].value < 1
    assert est["flr_mean_min"].value == min(est[f"flr_mean_{i}"].value for i in (0, 1))
    # the rows the runner recomputed every estimate from (it checks recompute() against them) are committed
    import gzip
    import json

    files = sorted((steering_project.artifacts_dir / "pipeline.saefeatures.sweep_reconstruction").glob("*.items/loss.jsonl.gz"))
    assert len(files) == 2
    row = json.loads(gzip.decompress(files[0].read_bytes()).splitlines()[0])
    assert {"nll_clean", "nll_0", "nll_zero_0", "nll_mean_0", "nll_mean_1"} <= set(row)


def test_the_thesis_test_runs_on_the_tiny_model(steering_project, tree, monkeypatch):  # noqa: F811
    detection_settings(monkeypatch)
    sae = {"root": str(tree), **SAE}
    detector = run_node(steering_project, "pipeline.saefeatures.detector", profile="tiny", sae=sae)
    est = detector.estimates
    assert {"sae_auroc", "neuron_auroc", "logprob_auroc", "sae_minus_neuron", "sae_minus_logprob"} <= set(est)
    assert est["sae_minus_neuron"].value == pytest.approx(est["sae_auroc"].value - est["neuron_auroc"].value)
    assert detector.values["n_candidate_latents"] == 128 and detector.values["n_splits"] == 2
    control = run_node(steering_project, "pipeline.saefeatures.detector", profile="tiny", sae=sae, features="random",
                       n_sets=3)
    assert len(control.values["set_auroc"]) == 3 and 1 / 4 <= control.values["rank_p"] <= 1
    assert set(control.values["balance"]) == {"layer", "activation", "firing"} and control.values["balance"]["layer"] == 0
    # both commit their per-item rows (the runner has checked that recompute() gives back the estimates)
    rows = {p.name for p in (steering_project.artifacts_dir / "pipeline.saefeatures.detector").glob("*.items/*")}
    assert rows == {"tests.jsonl.gz", "scores.jsonl.gz", "sets.jsonl.gz"}
    if not detector.values["h_features"]:
        pytest.skip("the tiny probe kept no positive-weight latent")
    common = {"profile": "tiny", "families": ["capital", "element_symbol", "city_country", "currency"],
              "detector": {**DETECTION, "sae": sae}}
    steer = run_node(steering_project, "pipeline.saefeatures.steering", **common)
    assert "compliance_slope_pp" in steer.estimates or "compliance_slope_pp" in steer.values["not_estimable"]
    assert steer.values["n_features"] == detector.values["n_h_features"]
    rand = run_node(steering_project, "pipeline.saefeatures.steering", **common, features="random", seeds=2)
    assert len(rand.values["seed_slopes_pp"]) == 2 and 0 < rand.values["rank_p"] <= 1
    matched = run_node(steering_project, "pipeline.saefeatures.steering", **common, features="random", seeds=2,
                       candidates=4, n_calibration=2, random_alphas=[0.0, 3.0])
    assert len(matched.values["kl"]["kept"]) == 2 and set(matched.values["balance"]) == {"kl", "kl_alpha_0", "kl_alpha_3", "activation", "layer"}
    assert matched.values["balance"]["layer"] == 0 and matched.values["match_pool"] == 5  # one for one on SAE
    assert matched.values["alphas"] == [0.0, 1.0, 3.0] and 0 < matched.values["rank_p"] <= 1


def test_the_decoded_delta_is_an_exact_no_op_at_alpha_one():
    import torch

    from pipeline.saefeatures.steering import scale_features
    from tests.test_saefeatures import tiny_saes

    lm, saes = tiny_saes()
    ids = torch.tensor([[2, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
        with scale_features(lm, {d.layer: d for d in saes}, {0: [0, 1, 2], 1: [3]}, 1.0):
            same = lm.model(input_ids=ids).logits
        with scale_features(lm, {d.layer: d for d in saes}, {0: list(range(16))}, 3.0):
            moved = lm.model(input_ids=ids).logits
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, moved)
    # the delta adds only the chosen latents' decoded part, never the SAE's reconstruction error
    seen = []
    with torch.no_grad():
        handle = lm.layers[1].register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple)
                                                                                    else out))
        lm.model(input_ids=ids)
        handle.remove()
        with scale_features(lm, {1: saes[1]}, {1: [0, 1]}, 3.0):
            handle = lm.layers[1].register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple)
                                                                                        else out))
            lm.model(input_ids=ids)
            handle.remove()
    h = seen[0]
    expected = h + 2.0 * saes[1].encode(h)[..., [0, 1]] @ saes[1].decoder_rows([0, 1])
    torch.testing.assert_close(seen[1], expected)


def test_batched_latent_sets_generate_what_each_set_generates_alone():
    """Decoded-delta steering of many latent sets in one pass (rows = set x prompt) against one set
    at a time through scale_features: the same tokens, texts and finish reasons (one thread)."""
    import torch

    from pipeline.saefeatures.steering import LatentSets
    from tests.test_saefeatures import tiny_saes
    from tests.test_steering_batch import same_generations

    lm, saes = tiny_saes()
    by = {d.layer: d for d in saes}
    rng = np.random.default_rng(0)
    width = saes[0].width
    sets = LatentSets(by, [{0: rng.choice(width, 4, replace=False).tolist(),
                            1: rng.choice(width, 3, replace=False).tolist()} for _ in range(4)] + [{1: [0, 1]}],
                      [-60.0, 60.0, 1.0, 300.0, -150.0])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        same_generations(lm, sets)
    finally:
        torch.set_num_threads(before)


def test_the_layer_sweep_reads_concepts_across_every_dictionary(steering_project, tree):  # noqa: F811
    """The layer sweep's concept search (layer_concepts.py) over a base width at two layers and a wider
    dictionary at one, on the tiny model: one feature matrix over all three, named by dictionary, the
    same statistics as the study's ranking, rows that recompute, and its within-set shuffle control."""
    sweep = {"profile": "tiny", "root": str(tree), **SAE, "layers": [0, 1], "epochs": 2}
    wide = {"wide_layers": [1], "wide_d_sae": 128}
    main = run_node(steering_project, "pipeline.saefeatures.layer_concepts", **sweep, **wide, concept="kindness")
    values, est = main.values, main.estimates
    assert values["dictionaries"] == ["L0", "L1", "L1w128"] and values["widths"] == [64, 64, 128]
    assert values["n_features"] == 256 and len(values["per_dictionary"]) == 3
    assert all(f.split("/")[0] in values["dictionaries"] for f in values["heldout_features"])
    assert est["heldout_gain_over_tfidf"].value == pytest.approx(est["heldout_spearman"].value - est["tfidf_spearman"].value)
    assert est["specificity_gap"].value == pytest.approx(est["heldout_spearman"].value - max(
        est[f"other_spearman_{c}"].value for c in values["other_concepts"]))
    assert values["best_dictionary_spearman"] == max(d["heldout_spearman"] for d in values["per_dictionary"])
    pages = values["features"]  # the top latents' page data, named apart from the study's pages
    assert len(pages) == 5 and all(p["page"] == f"kindness-sweep-{p['dictionary']}-{p['index']}" for p in pages)
    assert {p["dictionary"] for p in pages} <= set(values["dictionaries"]) and all(p["sentences"] for p in pages)
    control = run_node(steering_project, "pipeline.saefeatures.layer_concepts", **sweep, **wide, concept="kindness",
                       n_shuffles=50)
    assert control.values["observed_heldout"] == pytest.approx(est["heldout_spearman"].value)
    assert control.values["n_features"] == 256 and 1 / 51 <= control.values["rank_p"] <= 1


def test_the_merged_search_finds_a_planted_latent_in_the_wide_dictionary():
    """A latent of the second width that carries the label (plus a little noise) is the one the held-out
    search over the merged dictionaries chooses, by its merged name, and the per-dictionary search ranks
    its dictionary first; the base dictionaries hold noise."""
    from types import SimpleNamespace

    from pipeline.saefeatures import layer_concepts, ranking

    rng = np.random.default_rng(0)
    sets = np.repeat(np.arange(40), 4)
    y = np.tile(np.arange(4), 40)
    sentences = [{"id": f"s{i}", "concept": "kindness", "label": int(y[i]), "set": int(sets[i]), "sentence": "x",
                  "pieces": ["x"]} for i in range(len(y))]

    def node(layers, widths, planted=None):
        arrays = {}
        for layer, width in zip(layers, widths, strict=True):
            final = rng.random((len(y), width)).astype(np.float32)
            if planted is not None:
                final[:, planted] = y + 0.1 * rng.random(len(y))
            arrays[f"sae_L{layer}"] = {"final": final}
        values = {"sentences": sentences, "concepts": ["kindness"], "layers": layers, "widths": widths,
                  "neuronpedia_ids": [None] * len(layers)}
        return SimpleNamespace(result=SimpleNamespace(values=values), arrays=lambda name: arrays[name])

    merged = layer_concepts.Merged(node([0, 1], [16, 16]), node([1], [32], planted=7))
    f = ranking.Features(SimpleNamespace(upstream=lambda name: merged), SimpleNamespace(concept="kindness",
                                                                                        readout="final"))
    half = ranking.set_halves(f.sentences, f.y, 42)
    chosen, latent = ranking.choose_and_score(f, half)
    assert {f"L{f.layers[f.locate(c)[0]]}/{f.locate(c)[1]}" for c in chosen.values()} == {"L1w32/7"}
    per = layer_concepts.per_dictionary(f, half)
    assert [d["dictionary"] for d in per] == ["L0", "L1", "L1w32"]
    assert per[2]["heldout_spearman"] > 0.9 > max(per[0]["heldout_spearman"], per[1]["heldout_spearman"])
