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
    every position. `direction` carries its scale (e.g. unit vector x the projection's std); a
    (batch, d_model) direction gives each row its own vector. alpha = 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        delta = torch.as_tensor(direction, dtype=torch.float32) * alpha
        if delta.dim() == 2:
            delta = delta[:, None, :]  # (B, 1, D): one vector per row, at every position

        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, tuple):
                return (output[0] + delta.to(output[0].dtype), *output[1:])
            return output + delta.to(output.dtype)

        handles.append(lm.layers[layer].register_forward_hook(hook))

    return _hooks(install)


def shift_heads(lm: LoadedModel, shifts: Mapping[int, Mapping[int, Any]], strength: float) -> contextlib.AbstractContextManager:
    """ITI-style: add strength * shifts[layer][head] (head_dim,) to those heads' outputs, i.e. the
    slice of o_proj's input that belongs to each head, at every position; (batch, head_dim) vectors
    give each row its own shift. strength 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        for layer, heads in shifts.items():
            vectors = {h: torch.as_tensor(v, dtype=torch.float32) for h, v in heads.items()}
            rows = next((v.shape[0] for v in vectors.values() if v.dim() == 2), None)
            delta = torch.zeros(lm.n_heads * lm.head_dim) if rows is None else torch.zeros(rows, 1, lm.n_heads * lm.head_dim)
            for head, vector in vectors.items():
                part = slice(head * lm.head_dim, (head + 1) * lm.head_dim)
                if rows is None:
                    delta[part] = vector
                else:
                    delta[:, 0, part] = vector if vector.dim() == 2 else vector[None, :]
            delta = delta * strength

            def pre_hook(module: Any, args: tuple[Any, ...], delta: Any = delta) -> tuple[Any, ...]:
                return (args[0] + delta.to(args[0].dtype), *args[1:])

            handles.append(lm.attn(layer).o_proj.register_forward_pre_hook(pre_hook))

    return _hooks(install)
