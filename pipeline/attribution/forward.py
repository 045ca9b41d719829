"""Forward passes that skip what does not change: the residual stream entering the first adapted
layer is computed once per example (the layers below carry no adapter), and later passes run the
top layers from it; logits are computed only where a completion token is predicted (the
262,144-row unembedding is most of the 270M model's cost).

    cache = Residuals.capture(lm, encoded, start=12)      # once, no grad
    with adapter(lm, spec) as model:
        logits = completion_logits(lm, cache, batch)     # (tokens, vocab), grads flow into the adapter
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.attribution.encoding import Encoded


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass early."""


def text_model(lm: Any) -> Any:
    """The decoder module that owns the layer list (Gemma3TextModel), also inside a peft model."""
    from pipeline.attribution.lora import layers_name

    name = layers_name(lm.model).rpartition(".")[0]
    return lm.model.get_submodule(name) if name else lm.model


def _identity_layer() -> Any:
    """A module that stands in for a decoder layer: returns the hidden states unchanged."""
    import torch

    class Skip(torch.nn.Module):
        def forward(self, hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
            return hidden_states

    return Skip()


@contextmanager
def lower_layers_skipped(lm: Any, start: int) -> Iterator[Any]:
    """The text model with layers below `start` replaced by identities, so that
    `model(inputs_embeds=residual)` runs layers start.. on a cached residual stream (Gemma scales
    token embeddings inside the embedding module, which inputs_embeds bypasses)."""
    with layers_skipped(text_model(lm), start) as model:
        yield model


@contextmanager
def layers_skipped(model: Any, start: int) -> Iterator[Any]:
    """`model` (a decoder with .layers) with layers below `start` replaced by identities."""
    saved = [model.layers[i] for i in range(start)]
    try:
        for i in range(start):
            model.layers[i] = _identity_layer()
        yield model
    finally:
        for i, layer in enumerate(saved):
            model.layers[i] = layer


def _pad(rows: list[np.ndarray] | list[tuple[int, ...]], value: float = 0.0) -> tuple[Any, Any]:
    """Right-pad rows to a batch; returns (batch, attention mask) on the CPU. Causal attention keeps
    right padding from reaching real positions."""
    import torch

    n = max(len(r) for r in rows)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    if isinstance(rows[0], np.ndarray):
        out = torch.full((len(rows), n, rows[0].shape[1]), value, dtype=torch.float32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.from_numpy(r)
            mask[i, : len(r)] = 1
        return out, mask
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def layer_states(lm: Any, encoded: Encoded, layer: int, *, output: bool, batch_size: int = 32,
                 progress: Any = None) -> list[np.ndarray]:
    """The residual stream entering decoder layer `layer` (output=False) or leaving it (output=True),
    per example: a list of (tokens, d_model) float32 arrays. No grad; each pass stops there."""
    out: list[np.ndarray] = []
    for idx, hidden in batched_states(lm, encoded, (layer,), output=output, batch_size=batch_size, progress=progress):
        out += [hidden[layer][j, : len(encoded.ids[i])] for j, i in enumerate(idx)]
    return out


def batched_states(lm: Any, encoded: Encoded, layers: tuple[int, ...] | list[int], *, output: bool,
                   batch_size: int = 32, progress: Any = None) -> Iterator[tuple[list[int], dict[int, np.ndarray]]]:
    """Per batch of examples: their indices and, for every layer in `layers`, the residual stream
    entering it (output=False) or leaving it (output=True) as a (batch, padded tokens, d_model)
    float32 array (right padding: example j's rows are [: len(encoded.ids[i])]). One pass per batch
    for all the layers, stopping after the last one. No grad."""
    import torch

    layers = sorted(set(int(x) for x in layers))
    seen: dict[int, Any] = {}

    def grab(layer: int, value: Any) -> None:
        seen[layer] = value[0] if isinstance(value, tuple) else value
        if layer == layers[-1]:
            raise _Stop

    handles = []
    for layer in layers:
        block = text_model(lm).layers[layer]
        if output:
            handles.append(block.register_forward_hook(lambda module, args, out, layer=layer: grab(layer, out)))
        else:
            handles.append(block.register_forward_pre_hook(
                lambda module, args, kwargs, layer=layer: grab(
                    layer, kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]), with_kwargs=True))
    batches = [list(range(i, min(i + batch_size, len(encoded)))) for i in range(0, len(encoded), batch_size)]
    where = f"{'leaving' if output else 'entering'} layer{'s' if len(layers) > 1 else ''} " \
            f"{', '.join(map(str, layers))}"
    try:
        for idx in (progress(batches, desc=f"residual stream {where}") if progress else batches):
            ids, mask = _pad([encoded.ids[i] for i in idx])
            seen.clear()
            with torch.no_grad():
                try:
                    text_model(lm)(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device))
                except _Stop:
                    pass
            yield idx, {layer: seen[layer].float().cpu().numpy() for layer in layers}
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Residuals:
    """The residual stream entering layer `start`, per example: rows[offsets[i]:offsets[i+1]]."""

    start: int
    rows: np.ndarray  # (total tokens, d_model) float32
    offsets: np.ndarray  # (n + 1,)

    def example(self, i: int) -> np.ndarray:
        return self.rows[self.offsets[i]: self.offsets[i + 1]]

    @classmethod
    def capture(cls, lm: Any, encoded: Encoded, start: int, batch_size: int = 32, progress: Any = None) -> Residuals:
        """One forward pass over layers below `start` per batch (no grad; stops at layer `start`)."""
        parts = layer_states(lm, encoded, start, output=False, batch_size=batch_size, progress=progress)
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return cls(start, np.concatenate(parts).astype(np.float32), offsets)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"rows": self.rows, "offsets": self.offsets, "start": np.array(self.start)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Residuals:
        return cls(int(arrays["start"]), arrays["rows"], arrays["offsets"])


def completion_logits(lm: Any, cache: Residuals, encoded: Encoded, batch: list[int]) -> tuple[Any, Any]:
    """Logits at every position that predicts a completion token, and those tokens: (T, vocab), (T,).
    Runs the layers from `cache.start` up on the cached residual stream (grads reach an adapter)."""
    import torch

    hidden, mask = _pad([cache.example(i) for i in batch])
    dtype = next(lm.model.parameters()).dtype  # the cache is float32; a bfloat16 model gets its own dtype back
    with lower_layers_skipped(lm, cache.start) as model:
        out = model(inputs_embeds=hidden.to(lm.device, dtype), attention_mask=mask.to(lm.device)).last_hidden_state
    rows, cols, targets = [], [], []
    for j, i in enumerate(batch):
        n, ids = encoded.n_prompt[i], encoded.ids[i]
        for p in range(n - 1, len(ids) - 1):
            rows.append(j)
            cols.append(p)
            targets.append(ids[p + 1])
    picked = out[torch.tensor(rows, device=out.device), torch.tensor(cols, device=out.device)]  # (T, d), final norm
    return lm.model.get_output_embeddings()(picked), torch.tensor(targets, device=out.device)
