"""Mean activations over a token mask at two sites per layer, in one forward pass:

    resid  the residual stream leaving decoder layer l (d_model)
    heads  the attention heads' outputs, i.e. the input of o_proj (n_heads * head_dim)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pipeline.models import LoadedModel


@contextlib.contextmanager
def capture_means(lm: LoadedModel, mask: Any) -> Iterator[dict[str, list[Any]]]:
    import torch

    w = mask.to(torch.float32) / mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, T)
    out: dict[str, list[Any]] = {"resid": [None] * lm.n_layers, "heads": [None] * lm.n_layers}
    handles = []

    def resid_hook(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            h = output[0] if isinstance(output, tuple) else output
            out["resid"][layer] = torch.einsum("bt,btd->bd", w, h.float())
        return hook

    def heads_hook(layer: int) -> Any:
        def hook(module: Any, args: Any) -> None:
            out["heads"][layer] = torch.einsum("bt,btd->bd", w, args[0].float())
        return hook

    try:
        for layer in range(lm.n_layers):
            handles.append(lm.layers[layer].register_forward_hook(resid_hook(layer)))
            handles.append(lm.attn(layer).o_proj.register_forward_pre_hook(heads_hook(layer)))
        yield out
    finally:
        for h in handles:
            h.remove()


def mean_activations(lm: LoadedModel, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
    """{'resid': (B, L, d_model), 'heads': (B, L, n_heads * head_dim)} averaged over each span's tokens."""
    import torch

    from pipeline.hneurons.cett import decoder_only, encode_with_spans

    input_ids, attention_mask, masks = encode_with_spans(lm.tokenizer, texts, {"span": spans})
    with torch.inference_mode(), capture_means(lm, masks["span"]) as captured:
        decoder_only(lm)(input_ids=input_ids.to(lm.device), attention_mask=attention_mask.to(lm.device))
    return {k: torch.stack(v, dim=1).cpu().numpy() for k, v in captured.items()}
