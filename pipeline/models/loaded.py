"""A loaded model, its tokenizer and the handles experiments reach for (layers, MLPs, heads)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Attribute paths to the decoder layer list, most specific first.
# Gemma3ForCausalLM: model.layers; Gemma3ForConditionalGeneration (transformers 5): model.language_model.layers;
# older transformers nested language_model.model.layers.
_LAYER_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "model.model.layers",
    "model.language_model.model.layers",
)


def cache_dir() -> Path:
    """The project cache directory: `$CLAIMS_CACHE`, else `~/.cache/claims-interp`."""
    env = os.environ.get("CLAIMS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "claims-interp"


def model_cache_dir() -> Path:
    """Where dequantized model weights live: `$CLAIMS_MODEL_CACHE`, else `<cache_dir()>/models`.
    Separate from the experiment cache so that tests with a throwaway cache still reuse the model."""
    env = os.environ.get("CLAIMS_MODEL_CACHE")
    return Path(env).expanduser() if env else cache_dir() / "models"


def _get_path(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def find_layers(model: Any) -> Any:
    """The decoder layer ModuleList of a causal LM or a multimodal model's language part."""
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if layers is not None and hasattr(layers, "__len__") and len(layers) > 0:
            return layers
    raise ValueError(
        f"cannot find decoder layers in {type(model).__name__} (tried {', '.join(_LAYER_PATHS)})"
    )


def text_config(model: Any) -> Any:
    """The text (decoder) config, also for multimodal configs that nest one."""
    config = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


@dataclass
class LoadedModel:
    """A model in eval mode with its tokenizer, profile name, model id and weights fingerprint."""

    model: Any
    tokenizer: Any
    profile: str
    model_id: str
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        """The decoder's config (hidden size, heads, ...)."""
        return text_config(self.model)

    @property
    def layers(self) -> Any:
        """The decoder layers (a torch ModuleList)."""
        return find_layers(self.model)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    @property
    def d_ffn(self) -> int:
        return int(self.config.intermediate_size)

    @property
    def n_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", self.n_heads))

    @property
    def head_dim(self) -> int:
        head_dim = getattr(self.config, "head_dim", None)
        return int(head_dim) if head_dim else self.d_model // self.n_heads

    def mlp(self, layer: int) -> Any:
        """The feed-forward block of `layer` (has gate_proj, up_proj, down_proj)."""
        return self.layers[layer].mlp

    def attn(self, layer: int) -> Any:
        """The self-attention block of `layer` (has q_proj, k_proj, v_proj, o_proj)."""
        return self.layers[layer].self_attn

    def __repr__(self) -> str:
        return (
            f"LoadedModel(profile={self.profile!r}, model_id={self.model_id!r}, n_layers={self.n_layers}, "
            f"d_model={self.d_model}, d_ffn={self.d_ffn}, n_heads={self.n_heads}, head_dim={self.head_dim})"
        )
