"""The SAE a fingerprint reads, and the contract an upstream experiment meets to provide one.

Contract (any experiment module named by the fingerprint's `sae_experiment`): its result carries

  files[<sae_file>]      ctx.save_arrays(<sae_file>, **tensors): the tensors `SAE.save_model`
                         writes to sae_weights.safetensors (W_enc, b_enc, W_dec, b_dec, ...);
  files[<sae_file>_cfg]  ctx.save_json(<sae_file>_cfg, cfg): the dict it writes to cfg.json.

`save_sae(ctx, name, sae)` writes both from a sae-lens SAE (an inference SAE, or a training SAE
through `save_inference_model`); `load_sae(upstream, name)` writes the two files back into a
folder and returns `SAE.load_from_disk(folder)`. The SAE reads the output residual stream of one
block (hook_resid_post, TransformerLens `blocks.<layer>.hook_resid_post`), i.e. transformers'
hidden_states[layer + 1]; if its cfg names a hook, the layer in it must be the fingerprint's.

The SAE study's dictionaries (pipeline.saefeatures.saes, files sae_L<layer>, each a packed sae-lens
folder) are read as well: the fingerprint then takes its candidate layers from there.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.attribution.encoding import Encoded

WEIGHTS, CFG = "sae_weights.safetensors", "cfg.json"


def save_sae(ctx: Any, name: str, sae: Any) -> None:
    """Store a sae-lens SAE in the result's files under `name` and `<name>_cfg`."""
    from safetensors.numpy import load_file

    with tempfile.TemporaryDirectory(prefix="sae-") as tmp:
        save = getattr(sae, "save_inference_model", None) or sae.save_model
        save(tmp)
        tensors = load_file(str(Path(tmp) / WEIGHTS))
        cfg = json.loads((Path(tmp) / CFG).read_text())
    ctx.save_arrays(name, **tensors)
    ctx.save_json(f"{name}_cfg", cfg)


def load_sae(upstream: Any, name: str) -> Any:
    """The SAE an upstream result stored under `name` (see the contract above), or, where the
    upstream has no `<name>_cfg` file, one of the SAE study's dictionaries (pipeline.saefeatures.saes
    stores each layer's sae-lens folder packed under sae_L<layer>)."""
    from sae_lens import SAE
    from safetensors.numpy import save_file

    if f"{name}_cfg" not in upstream.result.files:
        from pipeline.saefeatures.dictionary import load_sae as load_packed

        return load_packed(upstream.arrays(name))
    tensors = {k: np.ascontiguousarray(v) for k, v in upstream.arrays(name).items()}
    cfg = upstream.json(f"{name}_cfg")
    with tempfile.TemporaryDirectory(prefix="sae-") as tmp:
        save_file(tensors, str(Path(tmp) / WEIGHTS))
        (Path(tmp) / CFG).write_text(json.dumps(cfg))
        sae = SAE.load_from_disk(tmp, device="cpu")
    return sae.eval()


def hook_layer(sae: Any) -> int | None:
    """The block index in the SAE's hook name (blocks.11.hook_resid_post -> 11), if it has one."""
    hook = getattr(sae.cfg.metadata, "hook_name", None) or ""
    match = re.search(r"(?:blocks|layers)\.(\d+)\.", str(hook))
    return int(match[1]) if match else None


def residual_tokens(lm: Any, encoded: Encoded, layer: int, batch_size: int = 32, progress: Any = None) -> list[np.ndarray]:
    """The output residual stream of block `layer` at every token of each example but the first
    (<bos>, whose residual is an outlier): a list of (tokens - 1, d_model) arrays."""
    from pipeline.attribution.forward import layer_states

    states = layer_states(lm, encoded, layer, output=True, batch_size=batch_size, progress=progress)
    return [s[1:] for s in states]


def candidate_features(lm: Any, encoded: Encoded, candidates: list[tuple[str, int, Any]], batch_size: int = 32,
                       progress: Any = None) -> dict[str, np.ndarray]:
    """Every candidate's (name, layer, SAE) mean feature activation per example over its tokens but
    the first (as `residual_tokens` gives them): {name: (n_examples, d_sae)}, from one decoder pass
    per batch of examples for all the candidates' layers."""
    from pipeline.attribution.forward import batched_states

    parts: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in candidates}
    layers = sorted({layer for _, layer, _ in candidates})
    for idx, hidden in batched_states(lm, encoded, layers, output=True, batch_size=batch_size, progress=progress):
        for name, layer, sae in candidates:
            tokens = [hidden[layer][j, 1: len(encoded.ids[i])] for j, i in enumerate(idx)]
            parts[name].append(feature_means(sae, tokens))
    return {name: np.concatenate(p) for name, p in parts.items()}


def feature_means(sae: Any, tokens: list[np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Mean SAE feature activation over each example's tokens: (n_examples, d_sae)."""
    import torch

    rows = np.concatenate(tokens)
    acts = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            acts.append(sae.encode(torch.from_numpy(rows[i: i + batch_size])).float().numpy())
    feats = np.concatenate(acts)
    bounds = np.cumsum([0] + [len(t) for t in tokens])
    return np.stack([feats[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
