"""The `paper` profile: google/gemma-3-4b-it from the Hugging Face hub (needs network or a warm HF cache)."""

from __future__ import annotations

import os
from typing import Any

from pipeline.models.loaded import LoadedModel

MODEL_ID = "google/gemma-3-4b-it"
# Pin a commit hash here (or via CLAIMS_PAPER_REVISION) for a reproducible paper run.
REVISION = "main"


def revision() -> str:
    return os.environ.get("CLAIMS_PAPER_REVISION", REVISION)


def fingerprint() -> dict[str, Any]:
    """Identity of the paper model: hub id and revision (no download)."""
    return {"profile": "paper", "model_id": MODEL_ID, "revision": revision(), "source": "hf-hub"}


def load() -> LoadedModel:
    """Load the 4B instruction-tuned model: bfloat16 on CUDA if available, else float32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(MODEL_ID, revision=revision())
    model = AutoModelForCausalLM.from_pretrained(
        MODEL_ID, revision=revision(), dtype=dtype, device_map="cuda" if cuda else None
    )
    model.eval()
    fp = fingerprint() | {"dtype": str(dtype).removeprefix("torch.")}
    return LoadedModel(model=model, tokenizer=tokenizer, profile="paper", model_id=MODEL_ID, fingerprint=fp)
