"""The residual stream after chosen decoder layers, read in one decoder pass (no unembedding).

A forward hook on each chosen layer copies its output, the residual stream there (sae-lens's
`blocks.L.hook_resid_post`, Gemma Scope's `model.layers.L.output`). The pass stops after the
deepest chosen layer: no later layer can change what was read, and the unembedding (most of the
270M model's parameters) never runs.

    acts = read_layers(lm, input_ids, attention_mask, layers=(3, 7, 11, 15))   # {layer: (B, T, D)}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.models import LoadedModel


class _Done(Exception):
    """Raised by the hook of the deepest chosen layer: the rest of the pass is not needed."""


def _hidden(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def capture(lm: LoadedModel, layers: Sequence[int], stop: bool = True) -> Iterator[dict[int, Any]]:
    """Hook the chosen layers; the yielded dict fills with {layer: (B, T, D) float32} during a pass.
    With `stop`, the deepest hook ends the pass by raising (caught by `read_layers`)."""
    out: dict[int, Any] = {}
    deepest = max(layers)
    handles = []

    def hook_for(layer: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
            out[layer] = _hidden(output).detach().float()
            if stop and layer == deepest:
                raise _Done

        return hook

    try:
        for layer in sorted(set(layers)):
            handles.append(lm.layers[layer].register_forward_hook(hook_for(layer)))
        yield out
    finally:
        for handle in handles:
            handle.remove()


def decoder_only(lm: LoadedModel) -> Any:
    """The decoder stack without the unembedding (Gemma3ForCausalLM.model; a multimodal model's
    language model)."""
    inner = getattr(lm.model, "model", lm.model)
    return getattr(inner, "language_model", inner)


def read_layers(lm: LoadedModel, input_ids: Any, attention_mask: Any, layers: Sequence[int],
                stop: bool = True) -> dict[int, Any]:
    """{layer: (B, T, D)} residual stream after each chosen layer, from one decoder pass."""
    import torch

    device = lm.device
    with torch.inference_mode(), capture(lm, layers, stop) as out:
        try:
            decoder_only(lm)(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)
        except _Done:
            pass
    missing = sorted(set(layers) - set(out))
    if missing:
        raise RuntimeError(f"the pass never reached layer(s) {missing}")
    return dict(out)


def tokenize(tokenizer: Any, texts: Sequence[str]) -> tuple[Any, Any]:
    """Token ids with <bos>, right padded (so that every real position sees only real tokens
    before it), and the attention mask."""
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, padding_side="right", add_special_tokens=True)
    return enc["input_ids"], enc["attention_mask"]
