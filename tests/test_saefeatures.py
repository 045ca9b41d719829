"""The SAE study's parts on the tiny model: the corpus from a Debian-shaped tree, SAEs that find
planted features, fragments from one pass equal to fragments run alone, resumed extraction equal
to an uninterrupted one, the scores against scipy and scikit-learn, and the audit's refusals
(published SAEs, the hub and paper profiles': tests/test_published_saes.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from claims.errors import ExperimentError
from claims.experiment import make_node
from claims.runner import Runner
from tests.saecorpus import write_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "debian")


def small(tree: Path, **extra) -> dict:
    return {"profile": "tiny", "root": str(tree), "train_sequences": 48, "heldout_sequences": 8, **extra}


def run(project, experiment: str, config: dict):
    return Runner(project).ensure(make_node(experiment, config, "test"))


def tiny_saes(widths=(16, 16)):
    from pipeline.models import load
    from pipeline.saefeatures.dictionary import Dictionary
    from pipeline.saefeatures.training import Recipe, train

    lm = load("tiny")
    rng = np.random.default_rng(0)
    out = []
    for layer, width in enumerate(widths):
        sae, _ = train(rng.normal(size=(512, lm.d_model)).astype(np.float32), Recipe(width, 4, 1, 128, 1e-3, layer))
        out.append(Dictionary(layer=layer, name=f"L{layer}", sae=sae))
    return lm, out


def test_sources_read_every_debian_layout(tree):
    from pipeline.saefeatures import sources

    docs = {s: list(sources.documents(s, tree)) for s in sources.PACKAGES}
    assert all(len(d) >= 20 for d in docs.values())
    assert docs["wordnet"][0][1].startswith("river: The ")  # word: gloss
    assert not any("/\\_/\\" in text for _, text in docs["fortunes"])  # ASCII art left out
    assert docs["kjv"][0][0] == "kjv/Genesis1:1" and len(docs["kjv"]) == 30  # four verses a document
    assert all(":func:" not in t and "``" not in t and "skipped" not in t for _, t in docs["pydoc"])
    assert "os.path.join call" in docs["pydoc"][0][1]


def test_a_missing_source_names_its_debian_package(tmp_path):
    from pipeline.saefeatures import sources

    with pytest.raises(ExperimentError, match="install Debian's wordnet-base"):
        list(sources.documents("wordnet", tmp_path))


def test_the_corpus_keeps_held_out_documents_apart_and_shares_sources(project, tree):
    state = run(project, "pipeline.saefeatures.corpus", small(tree))
    tokens = Runner(project).store.verified_blob(state.result.files["tokens"])
    with np.load(tokens) as data:
        train, heldout = data["train"], data["heldout"]
    seqs = json.loads(Runner(project).store.verified_blob(state.result.files["sequences"]).read_text())
    assert train.shape == (48, 32) and heldout.shape == (8, 32)
    assert (train[:, 0] == 2).all() and (heldout[:, 0] == 2).all()  # <bos> starts every sequence
    train_docs = {d for ds in seqs["train"]["docs"] for d in ds}
    assert not train_docs & {d for ds in seqs["heldout"]["docs"] for d in ds}
    assert {s: seqs["train"]["source"].count(s) for s in set(seqs["train"]["source"])} == \
        {"wordnet": 12, "fortunes": 12, "kjv": 12, "pydoc": 12}
    assert len(seqs["heldout_pieces"][0]) == 32


def test_an_sae_trained_with_sae_lens_finds_planted_features():
    from pipeline.saefeatures.training import Recipe, train

    rng = np.random.default_rng(0)
    d, n_features = 32, 16
    truth = rng.normal(size=(n_features, d))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    x = ((rng.random((6000, n_features)) < 0.1) * rng.uniform(1, 3, (6000, n_features)) @ truth).astype(np.float32)
    sae, stats = train(x, Recipe(d_sae=32, k=4, epochs=12, batch_size=128, lr=3e-3, seed=0))
    learned = sae.W_dec.detach().numpy()
    learned /= np.linalg.norm(learned, axis=1, keepdims=True)
    best = (truth @ learned.T).max(axis=1)  # each planted direction's closest decoder row
    assert (best > 0.95).all(), best.round(3)
    assert stats["steps"] == 12 * 6000 // 128


def test_the_decoder_bias_starts_at_the_mean_of_the_training_activations():
    """b_dec is set in sae-lens's scaled space and folded back: with a learning rate too small to move
    it, the saved SAE's bias is the raw activations' mean (zeros: sae-lens's default)."""
    from pipeline.saefeatures.training import Recipe, train

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(1024, 16)) + 40 * rng.normal(size=16)).astype(np.float32)  # mostly its mean
    sae, stats = train(x, Recipe(d_sae=32, k=4, epochs=1, batch_size=128, lr=1e-12, seed=0))
    np.testing.assert_allclose(sae.b_dec.detach().numpy(), x.mean(axis=0), rtol=1e-4, atol=1e-3)
    assert stats["b_dec_init"] == "mean" and stats["warmup_steps"] == 1
    sae, _ = train(x, Recipe(d_sae=32, k=4, epochs=1, batch_size=128, lr=1e-12, seed=0, b_dec_init="zeros"))
    np.testing.assert_allclose(sae.b_dec.detach().numpy(), 0, atol=1e-6)


def test_a_mean_initialised_sae_keeps_its_latents_alive_on_offset_data():
    """Activations that are mostly a shared offset (as the residual stream is) leave most latents of a
    zero-initialised TopK SAE dead; starting b_dec at the mean keeps most of them alive."""
    import torch

    from pipeline.saefeatures.training import Recipe, train

    rng = np.random.default_rng(2)
    d, n_features = 32, 64
    truth = rng.normal(size=(n_features, d))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    codes = (rng.random((6000, n_features)) < 0.05) * rng.uniform(1, 3, (6000, n_features))
    x = (codes @ truth + 20 * rng.normal(size=d)).astype(np.float32)
    dead = {}
    for init in ("mean", "zeros"):
        sae, _ = train(x, Recipe(d_sae=64, k=4, epochs=4, batch_size=128, lr=3e-3, seed=0, b_dec_init=init))
        with torch.no_grad():
            fired = (sae.encode(torch.from_numpy(x)) != 0).any(dim=0)
        dead[init] = float((~fired).float().mean())
    assert dead["zeros"] > 0.8 and dead["mean"] < 0.4, dead  # measured: 0.94 and 0.28


def test_fragments_from_one_pass_equal_running_each_fragment_alone():
    from pipeline.saefeatures.extraction import encode_batch, naive_fragments

    lm, saes = tiny_saes()
    texts = ["I lied to my boss.", "The lifeguard swam out through towering waves to reach the swimmer."]
    codes, lengths, _ = encode_batch(lm, saes, texts)  # one pass, right padded, two SAEs
    for j, text in enumerate(texts):
        alone = naive_fragments(lm, saes, text)  # one forward per fragment per SAE
        for i in range(len(saes)):
            assert alone[i].shape == (lengths[j] - 1, 16)
            np.testing.assert_allclose(codes[i][j, 1:lengths[j]], alone[i], atol=1e-5)


def test_packed_saes_load_with_sae_lens_unchanged():
    import torch

    from pipeline.saefeatures.dictionary import load_sae, save_sae

    _, saes = tiny_saes(widths=(8,))
    again = load_sae(save_sae(saes[0].sae))
    x = torch.randn(5, 64)
    torch.testing.assert_close(again.encode(x), saes[0].sae.encode(x))
    assert sorted(save_sae(saes[0].sae)) == ["cfg.json", "sae_weights.safetensors"]


def test_an_interrupted_extraction_resumes_to_the_uninterrupted_result(project, tree, monkeypatch, tmp_path):
    from pipeline.saefeatures import extraction

    config = small(tree, concepts=["dishonesty"], extract_batch_size=16)
    real, calls = extraction.encode_batch, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extraction, "encode_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(project, "pipeline.saefeatures.extraction", config)
    monkeypatch.setattr(extraction, "encode_batch", real)
    resumed = run(project, "pipeline.saefeatures.extraction", config)
    assert len(calls) == 3  # two batches were kept; the resumed run computed the other two
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path / "fresh-cache"))
    fresh_project = replace(project, cache_dir=tmp_path / "fresh-cache", artifacts_dir=tmp_path / "fresh-artifacts")
    fresh = run(fresh_project, "pipeline.saefeatures.extraction", config)
    for name in resumed.result.files:
        with np.load(Runner(project).store.verified_blob(resumed.result.files[name])) as a, \
                np.load(Runner(fresh_project).store.verified_blob(fresh.result.files[name])) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    assert resumed.result.values == fresh.result.values


def test_scores_agree_with_scipy_and_scikit_learn():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from pipeline.saefeatures import scores

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2, 3], 10)
    X = np.column_stack([y + rng.normal(0, 1, 40), rng.normal(size=40), np.zeros(40),
                         np.maximum(0, y - 1.5 + rng.normal(0, 0.3, 40))])
    rho = scores.spearman(X, y)
    for j in (0, 1, 3):
        assert rho[j] == pytest.approx(spearmanr(X[:, j], y).statistic)
    assert rho[2] == 0  # a latent that never fires
    keep = (y == 0) | (y == 3)
    assert scores.auroc(X, y)[0] == pytest.approx(roc_auc_score(y[keep] == 3, X[keep, 0]))
    perms = np.stack([rng.permutation(y) for _ in range(5)])
    np.testing.assert_allclose(scores.spearman_many(scores.centered_ranks(X), perms)[3],
                               scores.spearman(X, perms[3]))
    steps = scores.mono_steps(np.column_stack([y + rng.normal(0, 0.05, 40), np.zeros(40)]), y)
    assert steps.tolist() == [3, 0]


def test_the_audit_refuses_missing_or_stale_second_labels(tmp_path, monkeypatch):
    from pipeline.saefeatures import concepts

    folder = tmp_path / "concepts"
    folder.mkdir()
    rows = "id,label,sentence\n" + "".join(f"k-{label}-{i},{label},Sentence {label} {i}.\n"
                                          for label in range(4) for i in range(2))
    (folder / "kindness.csv").write_text(rows)
    (folder / "audit.csv").write_text("id,concept,sentence,second_label\nk-3-0,kindness,Sentence 3 0.,3\n"
                                      "k-0-1,kindness,Sentence 0 1.,\n")
    monkeypatch.setattr(concepts, "DATA", folder)

    class Ctx:
        pass

    with pytest.raises(ExperimentError, match="1 sampled sentences have no second_label"):
        concepts.run({"concepts": ["kindness"], "concept_data": "v1"}, Ctx())
    (folder / "audit.csv").write_text("id,concept,sentence,second_label\nk-3-0,kindness,Changed.,3\n")
    with pytest.raises(ExperimentError, match="audit.csv is stale"):
        concepts.run({"concepts": ["kindness"], "concept_data": "v1"}, Ctx())
    (folder / "kindness.csv").write_text(rows + "k-3-9,3,One more.\n")
    with pytest.raises(ExperimentError, match="balanced"):
        concepts.read_concept("kindness", folder)


def test_the_real_concept_data_is_balanced_and_audited():
    from pipeline.saefeatures import concepts

    rows = concepts.read_all(concepts.CONCEPTS)
    assert len(rows) >= 4 * 60 and len({r["sentence"] for r in rows}) == len(rows)
    result = concepts.run({"concept_data": "v1"}, None)
    assert result.values["n_audited"] >= 60 and result.estimates["agreement"].n == result.values["n_audited"]
    rows = concepts.read_all(concepts.CONCEPTS, concepts.DATA_V2)
    assert len(rows) == 800 and len({r["sentence"] for r in rows}) == 800
    assert all(sum(r["concept"] == c and r["set"] == s for r in rows) == 4 for c in concepts.CONCEPTS for s in range(1, 51))
    blind = concepts.run({}, None)  # v2: the blind second pass on every sentence
    assert blind.values["blind"] is True and blind.values["unique_items"] == 800
    assert {f"kappa_{c}" for c in concepts.CONCEPTS} <= set(blind.estimates)
    assert blind.estimates["agreement"].n == 800


def test_the_v2_audit_refuses_an_unlabelled_or_unknown_item(tmp_path, monkeypatch):
    import shutil

    from pipeline.saefeatures import concepts

    folder = tmp_path / "v2"
    shutil.copytree(concepts.DATA_V2, folder)
    monkeypatch.setattr(concepts, "DATA_V2", folder)
    labels = (folder / "second_labels.csv").read_text().splitlines()
    (folder / "second_labels.csv").write_text("\n".join(labels[:-1]) + "\n")
    with pytest.raises(ExperimentError, match="1 sentences have no second label"):
        concepts.run({}, None)
    (folder / "second_labels.csv").write_text("\n".join(labels + ["zzzzzz,2"]) + "\n")
    with pytest.raises(ExperimentError, match="not in key.csv"):
        concepts.run({}, None)


def test_label_shuffles_within_sets_keep_token_counts_and_find_a_planted_latent():
    from pipeline.saefeatures import shuffled

    rng = np.random.default_rng(0)
    sets = np.repeat(np.arange(40), 4)
    y = np.tile(np.arange(4), 40)
    length = rng.integers(8, 30, size=40)[sets].astype(float)
    half = (sets % 2).astype(int)
    strata = [(int(h), int(s)) for h, s in zip(half, sets, strict=True)]
    perms = shuffled.permutations(y, strata, 50, rng)
    assert all(sorted(p[sets == s].tolist()) == [0, 1, 2, 3] for p in perms[:5] for s in range(40))
    assert shuffled.length_smd(perms, length).max() == pytest.approx(0, abs=1e-12)
    X = rng.normal(size=(160, 30))
    X[:, 7] += 1.5 * y  # one planted latent
    observed, chosen = shuffled.heldout_many(X, half, y[None, :])
    null, _ = shuffled.heldout_many(X, half, perms)
    assert chosen[0].tolist() == [7, 7] and observed[0] > 0.6 and null.max() < observed[0]
    X[:, 11] = length  # a length counter: a within-set shuffle gives it the same score as the real labels
    null_len, _ = shuffled.heldout_many(X[:, [11]], half, perms)
    real_len, _ = shuffled.heldout_many(X[:, [11]], half, y[None, :])
    assert real_len[0] == pytest.approx(0, abs=1e-12) and np.allclose(null_len, 0, atol=1e-12)


def test_partial_spearman_removes_what_length_explains():
    from scipy.stats import rankdata

    from pipeline.saefeatures.length import partial_spearman

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2, 3], 15).astype(float)
    length = y * 2 + rng.normal(0, 1.5, 60)
    X = np.column_stack([length + rng.normal(0, 0.5, 60), y + rng.normal(0, 0.8, 60)])
    got = partial_spearman(X, y, length)
    for j in range(2):  # the correlation of the rank residuals after regressing out the length ranks
        rl = rankdata(length) - rankdata(length).mean()
        res = [r - (r @ rl) / (rl @ rl) * rl for r in (rankdata(X[:, j]) - 30.5, rankdata(y) - 30.5)]
        assert got[j] == pytest.approx(res[0] @ res[1] / np.linalg.norm(res[0]) / np.linalg.norm(res[1]))
    assert abs(got[0]) < 0.3 < got[1]  # the length copy loses its correlation, the label copy keeps it


def test_length_matched_pairs_compare_only_sentences_of_equal_length():
    from pipeline.saefeatures.length import matched_concordance, matched_pairs

    y = np.array([0, 0, 1, 3, 3, 2])
    length = np.array([5, 6, 5, 6, 5, 9.0])  # the label-2 sentence has no partner of its length
    X = np.array([[0, 1], [1, 0], [2, 0], [3, 0], [1, 0], [0, 0.0]])
    # pairs (higher, lower): (2, 0), (4, 0), (4, 2) of length 5 and (3, 1) of length 6; ties count half
    np.testing.assert_allclose(matched_concordance(X, y, length), [0.75, 0.25])
    assert matched_pairs(y, length) == 4
    assert np.isnan(matched_concordance(X[:2], y[:2], length[:2])).all()  # equal labels or lengths: no pair


def test_loss_recovered_is_one_for_a_perfect_dictionary_and_zero_ablation_is_its_floor():
    import torch

    from pipeline.models import load
    from pipeline.saefeatures.reconstruction import ZeroAblation, spliced_nll

    class Identity:
        layer = 1

        def encode(self, x):
            return x

        def decode(self, x):
            return x

    lm = load("tiny")
    ids = torch.randint(4, 200, (2, 12))
    ids[:, 0] = 2
    clean = spliced_nll(lm, ids, None).sum()
    assert torch.equal(spliced_nll(lm, ids, Identity()).sum(), clean)  # (zero - x) / (zero - clean) = 1
    assert not torch.equal(spliced_nll(lm, ids, ZeroAblation(1)).sum(), clean)


class Replace:
    """A stand-in dictionary at `layer` whose reconstruction of x is fn(x) (reconstruction.spliced_nll's
    interface: a full pass with a forward hook, the first design, is the reference)."""

    def __init__(self, layer, fn):
        self.layer, self.fn = layer, fn

    def encode(self, x):
        return x

    def decode(self, x):
        return self.fn(x)


def test_a_splice_run_from_its_layer_equals_a_full_pass_with_a_hook_bit_for_bit():
    """splicing.from_layer runs only the layers above the splice on the stream the unmodified pass
    read; floor.py and sweep_reconstruction.py rely on it giving exactly the loss of reconstruction.py's
    full pass with a hook, for a reconstruction, zeros and the mean."""
    import torch

    from pipeline.models import load
    from pipeline.saefeatures.reconstruction import ZeroAblation, spliced_nll, token_nll
    from pipeline.saefeatures.splicing import from_layer, layer_outputs, replaced, spliced

    lm = load("tiny")
    ids = torch.randint(4, 200, (3, 12))
    ids[:, 0] = 2
    with torch.inference_mode():
        hidden, acts = layer_outputs(lm, ids)
        assert sorted(acts) == list(range(lm.n_layers))
        clean = token_nll(lm, ids, hidden)
        assert torch.equal(clean, spliced_nll(lm, ids, None))
        for layer in range(lm.n_layers):
            half = Replace(layer, lambda x: x / 2)
            got = token_nll(lm, ids, from_layer(lm, spliced(half, acts[layer]), layer))
            assert torch.equal(got, spliced_nll(lm, ids, half))
            assert not torch.equal(got, clean)
            zero = token_nll(lm, ids, from_layer(lm, replaced(acts[layer], torch.zeros(lm.d_model)), layer))
            assert torch.equal(zero, spliced_nll(lm, ids, ZeroAblation(layer)))
            mu = acts[layer][:, 1:].mean(dim=(0, 1))
            mean = token_nll(lm, ids, from_layer(lm, replaced(acts[layer], mu), layer))
            assert torch.equal(mean, spliced_nll(lm, ids, Replace(layer, lambda x, mu=mu: mu.expand_as(x))))
            # an identity splice gives the clean loss back: (floor - x) / (floor - clean) = 1
            assert torch.equal(token_nll(lm, ids, from_layer(lm, acts[layer], layer)), clean)
    assert all(type(m).__name__ != "Skip" for m in lm.layers)  # the skipped layers are put back


def test_text_baselines_read_labels_off_planted_words_and_the_partial_removes_them():
    from pipeline.saefeatures import ranking

    rng = np.random.default_rng(1)
    words = ["calm", "fine", "plain", "quiet"]
    y = np.tile(np.arange(4), 40)
    half = (np.repeat(np.arange(40), 4) % 2).astype(int)
    texts = [f"the {words[label]} day number {rng.integers(1000)}" for label in y]
    for kind in ("words", "ngrams"):
        pred = ranking.bow_predictions(texts, y, half, kind=kind)
        assert np.corrcoef(pred, y)[0, 1] > 0.9  # the label is written in a word: the text model finds it
    rows = [{"half": int(h), "label": int(lab), "latent": float(p), "tfidf": float(p)}
            for h, lab, p in zip(half, y, pred, strict=True)]
    assert np.isnan(ranking._half_partial(rows, "latent", "tfidf")) or abs(ranking._half_partial(rows, "latent", "tfidf")) < 1e-6
    noisy = [{**r, "latent": r["label"] + rng.normal(0, 0.1), "tfidf": rng.normal()} for r in rows]
    assert ranking._half_partial(noisy, "latent", "tfidf") > 0.8  # a latent with signal the text model lacks


def planted_latents(rng: np.random.Generator, width: int = 512, n_saes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Planted SAE activations as real ones are (half the latents dead, the rest heavy-tailed) and 20
    latents per SAE chosen as a probe chooses them, the most active more often: (activation, chosen)."""
    activation = np.exp(rng.normal(0.5, 1.2, width * n_saes)) * (rng.random(width * n_saes) < 0.5)
    chosen = np.concatenate([sae * width + rng.choice(width, 20, replace=False, p=a ** 0.8 / (a ** 0.8).sum())
                             for sae, a in enumerate(activation.reshape(n_saes, width))])
    return activation, chosen


def test_matched_latents_stay_balanced_where_activity_deciles_did_not():
    """On planted activations, drawing from the same decile leaves the random latents much less
    active (the first rounds' failure); nearest-activation draws that carry each SAE's shortfall stay
    within the claim's tolerance of 0.1, in SAE exactly, without replacement."""
    from pipeline.hneurons.probing import activity_bins, matched_random_set
    from pipeline.saefeatures.detector_random import balance, matched_latent_set

    rng = np.random.default_rng(0)
    width, n_saes = 512, 4
    activation, chosen = planted_latents(rng, width, n_saes)
    bins = activity_bins(activation, width, 10)
    deciles = [matched_random_set(chosen, bins, width, rng) for _ in range(20)]
    nearest = [matched_latent_set(chosen, activation, width, rng, pool=5) for _ in range(20)]
    covariates = {"layer": np.repeat(np.arange(n_saes, dtype=float), width), "activation": activation}
    before, after = balance(chosen, deciles, covariates), balance(chosen, nearest, covariates)
    assert before["layer"] == after["layer"] == 0.0
    assert before["activation"] < -0.15 and abs(after["activation"]) < 0.1
    for drawn in nearest:
        assert (drawn // width == chosen // width).all()
        assert len(set(drawn.tolist())) == len(chosen) and not set(drawn.tolist()) & set(chosen.tolist())
    assert len({tuple(d) for d in nearest}) == len(nearest)  # random sets, not one nearest set


def test_the_steering_control_keeps_activation_balance_through_the_kl_match():
    """sae-steering's control draws its candidate sets as the detector's control does; on planted
    activations the sets it keeps stay within the claim's tolerance of 0.1 in activation (SAE
    exactly) even when the KL they cause rises with their activity and the `seeds` kept are the
    balanced nearest in KL of all candidates."""
    from pipeline.saefeatures.detector_random import latent_balance
    from pipeline.saefeatures.steering import Config, candidate_sets
    from pipeline.steering.neurons_random import balanced_nearest

    rng = np.random.default_rng(1)
    width, layers = 512, [3, 7, 12, 17]
    activation, chosen = planted_latents(rng, width, len(layers))
    cfg = Config(profile="tiny", features="random", seeds=32, candidates=192)
    sets = candidate_sets(cfg, chosen, activation, width)
    assert len(sets) == 192 and all((s // width == chosen // width).all() for s in sets)
    assert all(np.array_equal(a, b) for a, b in zip(sets, candidate_sets(cfg, chosen, activation, width), strict=True))
    log_ratio = 3 * np.log([activation[s].mean() / activation[chosen].mean() for s in sets]) + rng.normal(0, 0.3, 192)
    kept = balanced_nearest(log_ratio, cfg.seeds)
    for subset in (sets, [sets[k] for k in kept]):
        balance = latent_balance(chosen, subset, activation, layers, width)
        assert balance["layer"] == 0.0 and abs(balance["activation"]) < 0.1


def test_the_latent_control_balances_kl_at_each_end_where_the_mean_rule_offsets_them():
    """Planted candidates that cause less KL than the target at alpha 0 and more at alpha 3 (the
    neuron control's case): the mean-of-ends rule keeps a set balanced only on the mean, the
    each-end rule within 0.05 at both ends, with every kept index a real candidate once."""
    from pipeline.saefeatures.steering import balanced_each_end
    from pipeline.steering.neurons_random import balanced_nearest

    rng = np.random.default_rng(3)
    tilt = rng.normal(0, 0.6, 192)
    ratio = np.stack([-0.3 + tilt + rng.normal(0, 0.1, 192), 0.3 + tilt + rng.normal(0, 0.1, 192)], axis=1)
    ratio[:40] += np.array([0.4, -0.4])  # a minority tilted the other way, enough to balance each end
    by_mean = balanced_nearest(ratio.mean(axis=1), 32)
    assert abs(ratio[by_mean].mean()) < 0.05 and np.abs(ratio[by_mean].mean(axis=0)).max() > 0.1
    kept = balanced_each_end(ratio, 32)
    assert len(set(kept)) == 32 and kept == sorted(kept)
    assert np.abs(ratio[kept].mean(axis=0)).max() <= 0.05
    assert balanced_each_end(ratio, 32) == kept  # deterministic
    with pytest.raises(ValueError, match="cannot give 32"):
        balanced_each_end(ratio[:10], 32)
