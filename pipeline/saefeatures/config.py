"""The SAE study's configs. Each step's config extends the one upstream of it, so that a claim's
spec names only what it changes and every upstream node gets exactly its own fields
(`Step.upstream`). Fields left None take the profile's value (PROFILES), filled in at validation so
that the canonical config, and thus the cache key, always carries the value actually used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCES = ("wordnet", "fortunes", "kjv", "pydoc")


@dataclass(frozen=True)
class Release:
    """A sae-lens release of published SAEs (sae_lens/pretrained_saes.yaml): the layers whose
    residual stream it covers, its widths, and the L0 variant this study takes from it."""

    id: str
    layers: tuple[int, ...]
    widths: tuple[str, ...]
    l0: str

    def sae_id(self, layer: int, width: str) -> str:
        return f"layer_{layer}_width_{width}_l0_{self.l0}"


# Width tags of the published SAE ids, by number of latents.
WIDTHS = {16384: "16k", 65536: "65k", 262144: "262k", 1048576: "1m"}
# The profiles whose SAEs are published (Gemma Scope 2, loaded through SAE.from_pretrained) rather
# than trained here: their releases, tried in order for each layer. The L0 variant is `medium`
# where one exists (the variant Neuronpedia indexes); the all-layers release has small and big only.
PUBLISHED: dict[str, tuple[Release, ...]] = {
    "hub": (Release("gemma-scope-2-270m-pt-res", (5, 9, 12, 15), ("16k", "65k", "262k", "1m"), "medium"),
            Release("gemma-scope-2-270m-pt-res-all", tuple(range(18)), ("16k", "262k"), "small")),
    "paper": (Release("gemma-scope-2-4b-it-res", (9, 17, 22, 29), ("16k", "65k", "262k", "1m"), "medium"),),
}

# Per profile: where the SAEs read (residual stream after these decoder layers), their shape, and
# the corpus budget (sequences x tokens). The hub and paper profiles load published SAEs (PUBLISHED)
# and use their training sequences for the PCA control only; hub keeps embedded's corpus budget.
PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {"layers": (0, 1), "d_sae": 64, "k": 4, "seq_len": 32, "train_sequences": 96,
             "heldout_sequences": 24, "loss_sequences": 8, "epochs": 6, "batch_size": 128},
    "embedded": {"layers": (3, 7, 11, 15), "d_sae": 2048, "k": 32, "seq_len": 64, "train_sequences": 1024,
                 "heldout_sequences": 128, "loss_sequences": 32, "epochs": 3, "batch_size": 512},
    "hub": {"layers": PUBLISHED["hub"][0].layers, "d_sae": 16384, "k": 0, "seq_len": 64, "train_sequences": 1024,
            "heldout_sequences": 128, "loss_sequences": 32, "epochs": 0, "batch_size": 512},
    "paper": {"layers": PUBLISHED["paper"][0].layers, "d_sae": 16384, "k": 0, "seq_len": 128,
              "train_sequences": 512, "heldout_sequences": 256, "loss_sequences": 64, "epochs": 0, "batch_size": 512},
}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def upstream(self, model: type[BaseModel]) -> dict[str, Any]:
        """This config restricted to the fields of an upstream step's config."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k in model.model_fields}


def published_sae(profile: str, layer: int, d_sae: int) -> tuple[str, str]:
    """(release, sae id) of the published SAE a profile loads for a layer at a width, e.g.
    published_sae("hub", 12, 16384) == ("gemma-scope-2-270m-pt-res", "layer_12_width_16k_l0_medium")."""
    width = WIDTHS.get(d_sae)
    if width is None:
        raise ValueError(f"d_sae {d_sae} is not a published width ({', '.join(map(str, WIDTHS))})")
    for release in PUBLISHED[profile]:
        if layer in release.layers and width in release.widths:
            return release.id, release.sae_id(layer, width)
    offered = "; ".join(f"{r.id}: layers {list(r.layers)}, widths {', '.join(r.widths)}" for r in PUBLISHED[profile])
    raise ValueError(f"no published SAE for layer {layer} at width {width} on profile {profile!r} ({offered})")


class CorpusConfig(Step):
    profile: Literal["embedded", "hub", "paper", "tiny"] = Field(
        "embedded", description="Model and data profile (hub and paper load published SAEs: PUBLISHED).")
    seed: int = Field(42, description="Seed for every random choice downstream.")
    sources: tuple[str, ...] = Field(SOURCES, min_length=1, description="Debian text sources mixed in equal "
                                     "token shares (see pipeline/saefeatures/README.md).")
    root: str = Field("/", description="Filesystem root the Debian packages are installed under "
                      "(tests point it at a fixture tree).")
    seq_len: int | None = Field(None, ge=8, description="Tokens per sequence, <bos> included.")
    train_sequences: int | None = Field(None, ge=0, description="Sequences the SAEs are trained on.")
    heldout_sequences: int | None = Field(None, ge=4, description="Sequences of held-out documents "
                                          "(reconstruction quality, corpus snippets on feature pages).")

    @model_validator(mode="after")
    def _profile_defaults(self) -> CorpusConfig:
        bad = [s for s in self.sources if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown corpus source(s) {bad}; choose from {', '.join(SOURCES)}")
        return fill(self)


class SAEConfig(CorpusConfig):
    layers: tuple[int, ...] | None = Field(None, min_length=1, description="Decoder layers whose output "
                                           "(the residual stream) each SAE reads.")
    d_sae: int | None = Field(None, ge=2, description="Latents per SAE (hub, paper: the published width "
                              "taken, one of WIDTHS).")
    k: int | None = Field(None, ge=0, description="TopK: latents active per token (0 for loaded SAEs).")
    epochs: int | None = Field(None, ge=0, description="Passes over the training tokens.")
    batch_size: int | None = Field(None, ge=8, description="Training tokens per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (cosine-annealed to lr / 10).")
    forward_batch_size: int = Field(16, ge=1, description="Sequences per decoder pass.")

    @model_validator(mode="after")
    def _published(self) -> SAEConfig:
        if self.profile in PUBLISHED:  # every layer must have a published SAE at this width
            for layer in self.layers:
                published_sae(self.profile, layer, self.d_sae)
        return self


class ReconstructionConfig(SAEConfig):
    dictionary: Literal["sae", "pca"] = Field(
        "sae", description="sae: the trained (or loaded) SAEs; pca: the control, a rank-k PCA of the same "
        "training activations (as many dimensions as the SAE has active latents per token).")
    loss_sequences: int | None = Field(None, ge=2, description="Held-out sequences the spliced loss is read "
                                       "on (each needs full logits, the costly part).")
    level: float = Field(0.95, gt=0, lt=1)


class ExtractionConfig(SAEConfig):
    concepts: tuple[str, ...] = Field(("dishonesty", "aggression", "bravery", "kindness"), min_length=1,
                                      description="Concept sentence files in pipeline/saefeatures/data/.")
    concept_data: Literal["v1", "v2"] = Field(
        "v2", description="v1: the first round's 64 sentences per concept; v2: 200 per concept in length-matched "
        "sets, labelled blind a second time (pipeline/saefeatures/concepts.py).")
    fragments: bool = Field(True, description="Also keep every cumulative fragment's activations (every prefix "
                            "position of the same pass), not only each sentence's last token.")
    extract_batch_size: int = Field(16, ge=1, description="Sentences per decoder pass.")


class RankingConfig(ExtractionConfig):
    concept: str = Field("dishonesty", description="The concept whose labels the features are ranked on.")
    readout: Literal["max", "final"] = Field(
        "max", description="A sentence's activation: max over its fragments (every position after <bos>) "
        "or its last token only.")
    n_top: int = Field(5, ge=1, description="Top features kept per concept (feature pages).")
    n_examples: int = Field(6, ge=1, description="Top-activating sentences and corpus snippets per feature.")
    level: float = Field(0.95, gt=0, lt=1)


class ShuffledConfig(RankingConfig):
    n_shuffles: int = Field(1000, ge=10, description="Label permutations; the rank p is (1 + #>=) / (1 + n).")


def fill(cfg: Any) -> Any:
    """Set every None field that names a profile setting to the profile's value."""
    defaults = PROFILES[cfg.profile]
    for name in type(cfg).model_fields:
        if name in defaults and getattr(cfg, name) is None:
            object.__setattr__(cfg, name, defaults[name])
    return cfg
