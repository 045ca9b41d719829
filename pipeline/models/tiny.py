"""The `tiny` profile: a seeded, randomly initialised 2-layer Gemma 3 for unit tests (offline, seconds).

The tokenizer is byte-level (256 byte tokens + pad/eos/bos/unk, Gemma's special ids 0/1/2/3), built
in memory with `tokenizers`, so any text round-trips and `return_offsets_mapping` works.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pipeline.models.loaded import LoadedModel

MODEL_ID = "tiny-gemma3-random"
SEED = 0
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0, 1, 2, 3 as in Gemma
CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "max_position_embeddings": 2048,
    "sliding_window": 64,
    "layer_types": ["sliding_attention", "full_attention"],
    "initializer_range": 0.1,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}


def tokenizer() -> Any:
    """A byte-level fast tokenizer (vocab 260) that adds <bos> like Gemma's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def vocab_size() -> int:
    return len(SPECIAL_TOKENS) + 256


def fingerprint() -> dict[str, Any]:
    """Identity of the tiny model: hash of its config (with vocab size) and the init seed."""
    config = CONFIG | {"vocab_size": vocab_size(), "tokenizer": "byte-level-v1"}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    return {
        "profile": "tiny",
        "model_id": MODEL_ID,
        "config_sha256": digest,
        "seed": SEED,
        "dtype": "float32",
    }


def load() -> LoadedModel:
    """Build the tiny model deterministically (same weights in every process)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = tokenizer()
    config = Gemma3TextConfig(vocab_size=len(tok), **CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Gemma3ForCausalLM(config)
    model.to(torch.float32).eval()
    return LoadedModel(
        model=model, tokenizer=tok, profile="tiny", model_id=MODEL_ID, fingerprint=fingerprint()
    )
