"""Published SAEs (Gemma Scope 2, through sae-lens) for the profiles that load their dictionaries
rather than train them (config.PUBLISHED: hub, paper).

Where an SAE comes from is the only thing that differs between the two sources:

  the hub          `SAE.from_pretrained(release, sae_id)`: sae-lens maps the release id to a hub
                   repository and folder (google/gemma-scope-2-270m-pt, resid_post/layer_12_...)
                   and converts Gemma Scope's params.safetensors to its own JumpReLU SAE
  a local mirror   with `$CLAIMS_SAE_DIR` set, `SAE.load_from_disk($CLAIMS_SAE_DIR/<release>/<sae_id>)`:
                   the folder sae-lens's `save_model` writes (cfg.json + sae_weights.safetensors),
                   for machines without the hub. `mirror()` (scripts/mirror_saes.py) writes one
                   from the hub; tests write small random ones

Everything after that is one code path (`adopt`): the SAE is checked against the model (d_in, and
the hook it was trained on when its config names one), gets its Neuronpedia id and expected L0 from
sae-lens's release directory (never from a mirror's cfg.json), and goes to the CPU in float32, eval
mode. The cache key names the release and sae ids; with a mirror it also carries the sha256 of the
mirror's files, so a result made from a mirror is never mistaken for one made from the hub.

    sae, info = load("gemma-scope-2-270m-pt-res", "layer_12_width_16k_l0_medium", layer=12, d_model=640)
    info["neuronpedia_id"] == "gemma-3-270m/12-gemmascope-2-res-16k"; info["expected_l0"] == 60
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from pipeline.saefeatures.config import published_sae

log = logging.getLogger(__name__)

ENV = "CLAIMS_SAE_DIR"
FILES = ("cfg.json", "sae_weights.safetensors")  # what sae-lens's save_model writes
# A Neuronpedia id is "<model>/<sae>" (gemma-3-270m/12-gemmascope-2-res-16k): nothing else becomes a link.
NEURONPEDIA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def mirror_dir() -> Path | None:
    """The local mirror `$CLAIMS_SAE_DIR`, or None: load from the hub."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else None


def folder(root: Path, release: str, sae_id: str) -> Path:
    """Where a mirror keeps one SAE: <root>/<release>/<sae_id>/ (sae-lens's names, as on the hub)."""
    return root / release / sae_id


def fetch(release: str, sae_id: str) -> tuple[Any, str]:
    """(the SAE as sae-lens loads it, "mirror" or "hf-hub"): from the mirror when `$CLAIMS_SAE_DIR`
    is set, else from the hub."""
    from sae_lens import SAE

    root = mirror_dir()
    if root is None:
        return SAE.from_pretrained(release, sae_id, device="cpu"), "hf-hub"
    where = folder(root, release, sae_id)
    missing = [name for name in FILES if not (where / name).is_file()]
    if missing:
        raise FileNotFoundError(f"${ENV}={root}: {where} lacks {', '.join(missing)} (a folder as sae-lens's "
                                "save_model writes it; scripts/mirror_saes.py makes one from the hub)")
    return SAE.load_from_disk(where, device="cpu"), "mirror"


def directory_entry(release: str, sae_id: str) -> dict[str, Any]:
    """What sae-lens's release directory says of an SAE: Neuronpedia id (or None) and expected L0."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    info = get_pretrained_saes_directory().get(release)
    if info is None or sae_id not in info.saes_map:
        raise ValueError(f"sae-lens lists no SAE {sae_id!r} in release {release!r}")
    npid = (info.neuronpedia_id or {}).get(sae_id)
    if npid is not None and not NEURONPEDIA_ID.fullmatch(npid):
        log.warning("ignoring malformed Neuronpedia id %r of %s/%s", npid, release, sae_id)
        npid = None
    l0 = (info.expected_l0 or {}).get(sae_id)
    return {"neuronpedia_id": npid, "expected_l0": None if l0 is None else float(l0)}


def adopt(sae: Any, release: str, sae_id: str, layer: int, d_model: int, source: str) -> tuple[Any, dict[str, Any]]:
    """A loaded published SAE made one of the study's dictionaries (the same for hub and mirror):
    checked against the model, its Neuronpedia id from sae-lens's directory, CPU float32, eval."""
    import torch

    where = f"{release}/{sae_id}"
    if int(sae.cfg.d_in) != d_model:
        raise ValueError(f"{where}: the SAE reads {sae.cfg.d_in} dimensions, the model's residual stream has {d_model}")
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    if hook and hook != f"blocks.{layer}.hook_resid_post":
        raise ValueError(f"{where}: the SAE was trained on {hook}, not the residual stream after layer {layer}")
    entry = directory_entry(release, sae_id)
    sae.cfg.metadata.neuronpedia_id = entry["neuronpedia_id"]
    sae = sae.to(device="cpu", dtype=torch.float32).eval()
    return sae, {"release": release, "sae_id": sae_id, "source": source,
                 "architecture": sae.cfg.architecture(), **entry}


def load(release: str, sae_id: str, layer: int, d_model: int) -> tuple[Any, dict[str, Any]]:
    """A published SAE from its source, adopted: (sae, {release, sae_id, source, neuronpedia_id, ...})."""
    sae, source = fetch(release, sae_id)
    return adopt(sae, release, sae_id, layer, d_model, source)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    from claims.provenance import sha256_file

    return sha256_file(Path(path))


def inputs(profile: str, layers: tuple[int, ...], d_sae: int) -> dict[str, Any]:
    """The SAEs' part of a cache key: their ids, and with a mirror the sha256 of its files."""
    ids = [published_sae(profile, layer, d_sae) for layer in layers]
    root = mirror_dir()
    if root is None:
        return {"source": "hf-hub", "saes": [{"release": r, "sae_id": s} for r, s in ids]}
    out = []
    for release, sae_id in ids:
        files = {}
        for name in FILES:
            path = folder(root, release, sae_id) / name
            stat = path.stat() if path.is_file() else None
            files[name] = _sha256(str(path), stat.st_size, stat.st_mtime_ns) if stat else "missing"
        out.append({"release": release, "sae_id": sae_id, "sha256": files})
    return {"source": "mirror", "saes": out}


def mirror(dest: Path, profile: str = "hub", layers: tuple[int, ...] | None = None, d_sae: int | None = None
           ) -> list[Path]:
    """Download a profile's published SAEs from the hub (by default its layers and width) into a
    mirror at `dest`, as sae-lens's save_model writes them; returns the folders written."""
    from sae_lens import SAE

    from pipeline.saefeatures.config import PROFILES

    layers = layers or PROFILES[profile]["layers"]
    d_sae = d_sae or PROFILES[profile]["d_sae"]
    written = []
    for layer in layers:
        release, sae_id = published_sae(profile, layer, d_sae)
        target = folder(dest, release, sae_id)
        SAE.from_pretrained(release, sae_id, device="cpu").save_model(target)
        written.append(target)
    return written
