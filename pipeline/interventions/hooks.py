"""Forward hooks for steering. Each is a context manager; hooks are removed in `finally`.

Everything a hook needs is built once at install (index tensors, deltas in the model's dtype and
on its device), so a call does one tensor operation per site: scaled neurons and shifted heads are
changed in place on the slice they touch (the tensors are temporaries of the module's forward that
nothing else holds), the residual direction is one add.
"""

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


def _param(lm: LoadedModel) -> Any:
    return next(lm.model.parameters())


def scale_neurons(lm: LoadedModel, neurons: Mapping[int, Sequence[int]], alpha: float) -> contextlib.AbstractContextManager:
    """Multiply the selected FFN neurons' activations (the input of down_proj) by alpha.
    The hook is installed at alpha = 1 too (x * 1.0 == x exactly), so the baseline runs the same code."""
    import torch

    def install(handles: list[Any]) -> None:
        device = _param(lm).device
        for layer, idx in neurons.items():
            if not len(idx):
                continue
            index = torch.as_tensor(list(idx), dtype=torch.long, device=device)

            def pre_hook(module: Any, args: tuple[Any, ...], index: Any = index) -> None:
                args[0][..., index] *= alpha  # (B, T, d_ffn), in place: act(gate) * up, a temporary

            handles.append(lm.mlp(layer).down_proj.register_forward_pre_hook(pre_hook))

    return _hooks(install)


def add_direction(lm: LoadedModel, layer: int, direction: Any, alpha: float) -> contextlib.AbstractContextManager:
    """Add alpha * direction (d_model,) to the residual stream output of decoder layer `layer`, at
    every position. `direction` carries its scale (e.g. unit vector x the projection's std); a
    (batch, d_model) direction gives each row its own vector. alpha = 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        p = _param(lm)
        delta = torch.as_tensor(direction, dtype=torch.float32) * alpha
        if delta.dim() == 2:
            delta = delta[:, None, :]  # (B, 1, D): one vector per row, at every position
        delta = delta.to(device=p.device, dtype=p.dtype)

        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, tuple):
                return (output[0] + delta, *output[1:])
            return output + delta

        handles.append(lm.layers[layer].register_forward_hook(hook))

    return _hooks(install)


def head_slices(lm: LoadedModel, heads: Sequence[int]) -> list[slice]:
    """The columns of o_proj's input that belong to each head."""
    return [slice(h * lm.head_dim, (h + 1) * lm.head_dim) for h in heads]


def shift_heads(lm: LoadedModel, shifts: Mapping[int, Mapping[int, Any]], strength: float) -> contextlib.AbstractContextManager:
    """ITI-style: add strength * shifts[layer][head] (head_dim,) to those heads' outputs, i.e. the
    slice of o_proj's input that belongs to each head, at every position; (batch, head_dim) vectors
    give each row its own shift. strength 0 adds exact zeros."""
    import torch

    def install(handles: list[Any]) -> None:
        p = _param(lm)
        for layer, heads in shifts.items():
            parts, deltas = head_slices(lm, list(heads)), []
            for vector in heads.values():
                delta = torch.as_tensor(vector, dtype=torch.float32) * strength
                deltas.append((delta[:, None, :] if delta.dim() == 2 else delta).to(device=p.device, dtype=p.dtype))

            def pre_hook(module: Any, args: tuple[Any, ...], parts: Any = parts, deltas: Any = deltas) -> None:
                x = args[0]  # (B, T, n_heads * head_dim), in place: the attention output, a temporary
                for part, delta in zip(parts, deltas, strict=True):
                    x[..., part] += delta

            handles.append(lm.attn(layer).o_proj.register_forward_pre_hook(pre_hook))

    return _hooks(install)
