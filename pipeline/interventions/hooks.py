"""Forward hooks for steering. Each is a context manager; hooks are removed in `finally`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pipeline.models import LoadedModel


@contextlib.contextmanager
def _hooks(handles_factory: Any) -> Iterator[None]:
    handles: list[Any] = []
    try:
        handles_factory(handles)
        yield
    finally:
        for handle in handles:
            handle.remove()


def scale_neurons(lm: LoadedModel, neurons: Mapping[int, Sequence[int]], alpha: float) -> contextlib.AbstractContextManager:
    """Multiply the selected FFN neurons' activations (the input of down_proj) by alpha.
    The hook is installed at alpha = 1 too (x * 1.0 == x exactly), so the baseline runs the same code."""
    import torch

    def install(handles: list[Any]) -> None:
        for layer, idx in neurons.items():
            if not len(idx):
                continue
            index = torch.as_tensor(list(idx), dtype=torch.long)

            def pre_hook(module: Any, args: tuple[Any, ...], index: Any = index) -> tuple[Any, ...]:
                z = args[0].clone()  # (B, T, d_ffn)
                z[..., index] *= alpha
                return (z, *args[1:])

            handles.append(lm.mlp(layer).down_proj.register_forward_pre_hook(pre_hook))

    return _hooks(install)


def add_direction(lm: LoadedModel, layer: int, direction: Any, alpha: float) -> contextlib.AbstractContextManager:
    """Add alpha * direction (d_model,) to the residual stream output of decoder layer `layer`, at
    every position. `direction` carries its scale (e.g. unit vector x the projection's std).
    alpha = 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        delta = torch.as_tensor(direction, dtype=torch.float32) * alpha

        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, tuple):
                return (output[0] + delta.to(output[0].dtype), *output[1:])
            return output + delta.to(output.dtype)

        handles.append(lm.layers[layer].register_forward_hook(hook))

    return _hooks(install)


def shift_heads(lm: LoadedModel, shifts: Mapping[int, Mapping[int, Any]], strength: float) -> contextlib.AbstractContextManager:
    """ITI-style: add strength * shifts[layer][head] (head_dim,) to those heads' outputs, i.e. the
    slice of o_proj's input that belongs to each head, at every position. strength 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        for layer, heads in shifts.items():
            delta = torch.zeros(lm.n_heads * lm.head_dim)
            for head, vector in heads.items():
                delta[head * lm.head_dim : (head + 1) * lm.head_dim] = torch.as_tensor(vector, dtype=torch.float32)
            delta = delta * strength

            def pre_hook(module: Any, args: tuple[Any, ...], delta: Any = delta) -> tuple[Any, ...]:
                return (args[0] + delta.to(args[0].dtype), *args[1:])

            handles.append(lm.attn(layer).o_proj.register_forward_pre_hook(pre_hook))

    return _hooks(install)
