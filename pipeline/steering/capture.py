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


def answer_activations(lm: LoadedModel, rows: dict[str, dict[str, Any]], ids: Sequence[str], batch_size: int,
                       ckpt: Any, progress: Any) -> dict[str, np.ndarray]:
    """Mean activations over each question's answer tokens (prompt + the model's own answer, as in
    the detection study), checkpointed per batch: {'resid': (N, L, D), 'heads': (N, L, H * hd)}."""
    from pipeline.hneurons.activations import text_and_spans

    starts = range(0, len(ids), batch_size)
    for b in progress(starts, total=len(starts), desc="residual and head activations"):
        if b not in ckpt:
            texts, spans = [], []
            for q in ids[b : b + batch_size]:
                text, parts = text_and_spans(rows[q]["prompt"], rows[q]["response"])
                texts.append(text)
                spans.append(parts["answer"])
            ckpt[b] = mean_activations(lm, texts, spans)
    parts = [ckpt[b] for b in starts]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("resid", "heads")}
