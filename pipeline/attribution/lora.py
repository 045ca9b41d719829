"""LoRA adapters (peft) on the process's one loaded model, injected for the length of a `with`
block and removed after it, so that every other experiment sees the model unchanged.

    spec = LoraSpec(rank=8, alpha=16, layers=6)
    with adapter(lm, spec, seed=0) as model:          # fresh adapter on the top 6 layers
        ...train...
        state = adapter_state(model)                  # {name: array}, for ctx.save_arrays
    with adapter(lm, spec, state=state) as model:     # the same adapter again
        ...

Only the top `layers` decoder layers carry an adapter, so the residual stream entering the first
adapted layer does not depend on the adapter: training and evaluation read it from a cache
(pipeline.attribution.forward) and run the top layers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 8
    alpha: float = 16.0
    layers: int = 6  # adapted decoder layers, counted from the top
    targets: tuple[str, ...] = TARGETS

    def first_layer(self, n_layers: int) -> int:
        """Index of the lowest adapted layer (the cached residual stream enters it)."""
        if not 1 <= self.layers <= n_layers:
            raise ValueError(f"lora layers must be between 1 and {n_layers}, got {self.layers}")
        return n_layers - self.layers


def layers_name(model: Any) -> str:
    """Dotted name of the decoder layer list inside `model` (e.g. "model.layers")."""
    from pipeline.models import find_layers

    layers = find_layers(model)
    return next(name for name, module in model.named_modules() if module is layers)


def target_names(model: Any, spec: LoraSpec) -> list[str]:
    """Full module names of the adapted linear layers (only the language model's top layers)."""
    from pipeline.models import find_layers

    layers, prefix = find_layers(model), layers_name(model)
    names = []
    for i in range(spec.first_layer(len(layers)), len(layers)):
        for sub, _ in layers[i].named_modules():
            if sub.rpartition(".")[2] in spec.targets:
                names.append(f"{prefix}.{i}.{sub}")
    if not names:
        raise ValueError(f"no module named {', '.join(spec.targets)} in the top {spec.layers} layers")
    return names


@contextmanager
def adapter(lm: Any, spec: LoraSpec, state: dict[str, np.ndarray] | None = None, seed: int = 0) -> Iterator[Any]:
    """The shared model with a LoRA adapter (fresh from `seed`, or loaded from `state`); the adapter
    is removed and every parameter's requires_grad restored when the block ends."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    model = lm.model
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=0.0, bias="none",
                        target_modules=target_names(model, spec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    try:
        if state is not None:
            result = set_peft_model_state_dict(peft_model, {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
            missing = [k for k in result.missing_keys if "lora_" in k]
            if missing or result.unexpected_keys:
                raise ValueError(f"adapter state does not fit the model: missing {missing[:3]}, "
                                 f"unexpected {list(result.unexpected_keys)[:3]}")
        yield peft_model
    finally:
        peft_model.unload()
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, p.requires_grad))
        model.eval()


def adapter_state(peft_model: Any) -> dict[str, np.ndarray]:
    """The adapter's weights as float32 arrays, keyed as peft saves them."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu().numpy() for k, v in get_peft_model_state_dict(peft_model).items()}


def lora_parameters(peft_model: Any) -> list[Any]:
    return [p for name, p in peft_model.named_parameters() if "lora_" in name]
