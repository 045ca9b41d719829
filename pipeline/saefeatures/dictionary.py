"""SAEs (and the PCA control) as dictionaries over a layer's residual stream, and how they travel
through the engine's blob cache.

An SAE is saved by sae-lens (`save_model`: sae_weights.safetensors + cfg.json) into a folder whose
files are packed verbatim, as byte arrays, into one .npz result file; a reader unpacks them into a
temporary folder and loads them with `SAE.load_from_disk`. The hub and paper profiles' SAEs are
published ones (published.py: `SAE.from_pretrained(release, sae_id)`, or a local mirror) and travel
the same way, with their Neuronpedia ids; SAEs trained here have none.

    saes = load_saes(ctx.upstream("saes"))          # [Dictionary(layer, sae, ...)], deepest last
    codes = saes[0].encode(x)                        # (N, d_sae) from (N, d_model)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NEURONPEDIA = "https://neuronpedia.org/{neuronpedia_id}/{index}"


def pack_dir(folder: Path) -> dict[str, np.ndarray]:
    """Every file of a folder as a uint8 array named after it (an .npz holds them verbatim)."""
    return {p.name: np.frombuffer(p.read_bytes(), dtype=np.uint8) for p in sorted(folder.iterdir()) if p.is_file()}


def unpack_dir(arrays: dict[str, np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in arrays.items():
        (folder / name).write_bytes(np.asarray(data, dtype=np.uint8).tobytes())
    return folder


def save_sae(sae: Any) -> dict[str, np.ndarray]:
    """An SAE saved by sae-lens, packed."""
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_model(tmp)
        return pack_dir(Path(tmp))


def load_sae(arrays: dict[str, np.ndarray]) -> Any:
    """An SAE from a packed sae-lens folder, loaded with SAE.load_from_disk (CPU, eval mode)."""
    from sae_lens import SAE

    with tempfile.TemporaryDirectory() as tmp:
        sae = SAE.load_from_disk(unpack_dir(arrays, Path(tmp)), device="cpu")
    return sae.eval()


@dataclass
class Dictionary:
    """One layer's dictionary: an SAE, or (the control) a rank-k PCA of the training activations."""

    layer: int
    name: str  # e.g. "L7" (what feature ids are prefixed with)
    sae: Any = None
    mean: np.ndarray | None = None  # PCA: (D,)
    components: np.ndarray | None = None  # PCA: (k, D), orthonormal rows
    neuronpedia_id: str | None = None

    @property
    def width(self) -> int:
        return int(self.sae.cfg.d_sae) if self.sae is not None else int(self.components.shape[0])

    def encode(self, x: Any) -> Any:
        """(..., D) float32 torch -> (..., width) codes."""
        import torch

        with torch.no_grad():
            if self.sae is not None:
                return self.sae.encode(x)
            return (x - torch.as_tensor(self.mean)) @ torch.as_tensor(self.components).T

    def decode(self, codes: Any) -> Any:
        import torch

        with torch.no_grad():
            if self.sae is not None:
                return self.sae.decode(codes)
            return codes @ torch.as_tensor(self.components) + torch.as_tensor(self.mean)

    def decoder_rows(self, index: Any) -> Any:
        """(len(index), D): the decoder direction of each chosen latent."""
        import torch

        W = self.sae.W_dec if self.sae is not None else torch.as_tensor(self.components)
        return W[torch.as_tensor(index, dtype=torch.long)].detach().float()

    def link(self, index: int) -> str | None:
        return NEURONPEDIA.format(neuronpedia_id=self.neuronpedia_id, index=index) if self.neuronpedia_id else None


def load_saes(upstream: Any) -> list[Dictionary]:
    """The SAEs an upstream `pipeline.saefeatures.saes` node made, shallowest layer first."""
    out = []
    for entry in upstream.result.values["saes"]:
        sae = load_sae(upstream.arrays(entry["file"]))
        out.append(Dictionary(layer=entry["layer"], name=f"L{entry['layer']}", sae=sae,
                              neuronpedia_id=entry.get("neuronpedia_id")))
    return out


def load_pca(upstream: Any, ks: list[int]) -> list[Dictionary]:
    """The control: per layer, the top-k principal directions of the same training activations."""
    out = []
    for entry, k in zip(upstream.result.values["saes"], ks, strict=True):
        pca = upstream.arrays(entry["pca"])
        out.append(Dictionary(layer=entry["layer"], name=f"L{entry['layer']}", mean=pca["mean"],
                              components=pca["components"][:k]))
    return out
