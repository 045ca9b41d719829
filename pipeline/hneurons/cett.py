"""CETT: each FFN neuron's share of its layer's output, captured in one forward pass with hooks.

For layer l, token t and neuron j, with z the input of down_proj (the gated activation, d_ffn)
and h = down_proj(z) (d_model):

    CETT[l, t, j] = |z_j| * ||W_down[:, j]|| / ||h||

The hooks average CETT over the tokens of a mask (e.g. the answer tokens) inside the pass, so
only (batch, n_layers, d_ffn) leaves the model, never (batch, tokens, d_ffn) per layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pipeline.models import LoadedModel

EPS = 1e-12


def cett_tokens(z: Any, h: Any, col_norm: Any) -> Any:
    """Per-token CETT: z (B, T, F), h (B, T, D), col_norm (F,) -> (B, T, F)."""
    return z.abs() * col_norm / (h.norm(dim=-1, keepdim=True) + EPS)


@contextlib.contextmanager
def capture(loaded: LoadedModel, masks: dict[str, Any]) -> Iterator[dict[str, list[Any]]]:
    """Hook every layer's down_proj; for each named mask (B, T) of 0/1, collect the masked mean
    CETT per layer. Yields {mask name: [per-layer (B, F) tensors]}, filled by the forward pass.
    Hooks are removed on exit, even when the pass raises."""
    import torch

    out: dict[str, list[Any]] = {name: [None] * loaded.n_layers for name in masks}
    weights = {name: m.to(torch.float32) / m.sum(dim=1, keepdim=True).clamp(min=1) for name, m in masks.items()}
    handles = []

    def hook_for(layer: int) -> Any:
        down = loaded.mlp(layer).down_proj
        col_norm = down.weight.detach().float().norm(dim=0)  # (F,): ||W_down[:, j]||

        def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
            per_token = cett_tokens(inputs[0].float(), output.float(), col_norm)  # (B, T, F)
            for name, w in weights.items():
                out[name][layer] = torch.einsum("bt,btf->bf", w, per_token)

        return down.register_forward_hook(hook)

    try:
        for layer in range(loaded.n_layers):
            handles.append(hook_for(layer))
        yield out
    finally:
        for handle in handles:
            handle.remove()


def encode_with_spans(tokenizer: Any, texts: Sequence[str], spans: dict[str, Sequence[tuple[int, int]]]
                      ) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenize texts (right padding) and turn character spans into token masks via offsets.

    spans[name][i] = (start, end) character range in texts[i]; a token belongs to the span when
    its character range overlaps it. Returns input_ids, attention_mask, {name: (B, T) mask}.
    """
    import torch

    enc = tokenizer(list(texts), return_offsets_mapping=True, padding=True, return_tensors="pt",
                    add_special_tokens=True, padding_side="right")
    offsets = enc["offset_mapping"]  # (B, T, 2)
    attention = enc["attention_mask"].bool()
    masks = {}
    for name, ranges in spans.items():
        start = torch.tensor([r[0] for r in ranges]).unsqueeze(1)
        end = torch.tensor([r[1] for r in ranges]).unsqueeze(1)
        tok_start, tok_end = offsets[..., 0], offsets[..., 1]
        nonempty = tok_end > tok_start  # special tokens have empty offsets
        masks[name] = (tok_start < end) & (tok_end > start) & nonempty & attention
    return enc["input_ids"], enc["attention_mask"], masks


def cett_batch(loaded: LoadedModel, texts: Sequence[str], spans: dict[str, Sequence[tuple[int, int]]]
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Mean CETT per neuron over each span: {name: (B, n_layers, d_ffn) float32}, plus the number
    of tokens each span covered {name: (B,)} (0 means the span matched no token)."""
    values, counts, _ = read_batch(loaded, texts, spans, share_prefix=False)
    return values, counts


def read_batch(loaded: LoadedModel, texts: Sequence[str], spans: dict[str, Sequence[tuple[int, int]]],
               scored: str | None = None, share_prefix: bool = True
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Mean CETT over each span in one pass, as `cett_batch`, and for the span named `scored` the
    model's confidence in its tokens: the mean log-probability of each token given what precedes it
    and the mean entropy of those next-token distributions ({"logprob": (B,), "entropy": (B,)}).

    Texts that begin with the same tokens (the few-shot examples) compute them once: the prefix runs
    alone and its KV cache serves every row (causal attention: the suffix's activations are those
    of the full pass), and only the suffix runs under the hooks. Spans must lie in the suffix."""
    import torch

    input_ids, attention_mask, masks = encode_with_spans(loaded.tokenizer, texts, spans)
    lengths = attention_mask.sum(dim=1)
    p = 0
    if share_prefix:
        first = min(int(m[i].nonzero()[0]) for m in masks.values() for i in range(len(texts)) if m[i].any())
        rows = [input_ids[i, : lengths[i]].tolist() for i in range(len(texts))]
        from pipeline.models.sampling import common_prefix

        p = min(common_prefix(rows), first - 1) if len(texts) > 1 else 0
        p = max(p, 0)
    device = loaded.device
    decoder = decoder_only(loaded)
    with torch.inference_mode():
        cache = None
        if p:
            cache = decoder(input_ids=input_ids[:1, :p].to(device), use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(texts))
        suffix_masks = {name: m[:, p:] for name, m in masks.items()}
        positions = (p + torch.arange(input_ids.shape[1] - p)).expand(len(texts), -1)
        with capture(loaded, suffix_masks) as captured:
            out = decoder(input_ids=input_ids[:, p:].to(device), attention_mask=attention_mask.to(device),
                          position_ids=positions.to(device), past_key_values=cache, use_cache=p > 0)
        extra = _confidence(loaded, out.last_hidden_state, input_ids[:, p:], suffix_masks[scored]) if scored else {}
    values = {name: torch.stack(layers, dim=1).cpu().numpy().astype(np.float32) for name, layers in captured.items()}
    counts = {name: m.sum(dim=1).cpu().numpy() for name, m in masks.items()}
    return values, counts, extra


def _confidence(loaded: LoadedModel, hidden: Any, ids: Any, mask: Any) -> dict[str, np.ndarray]:
    """Mean log-probability of the masked tokens and mean entropy of their predictive distributions,
    from the hidden state one position earlier (only those positions go through the unembedding)."""
    import torch

    rows, cols = mask.nonzero(as_tuple=True)
    keep = cols > 0  # a token needs a predecessor inside the suffix (the question always precedes)
    rows, cols = rows[keep], cols[keep]
    logits = loaded.model.get_output_embeddings()(hidden[rows, cols - 1].float())  # (n, V)
    cap = getattr(loaded.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(1, ids[rows, cols].unsqueeze(1).to(logp.device)).squeeze(1)
    entropy = -(logp.exp() * logp).sum(-1)
    B = mask.shape[0]
    count = torch.zeros(B).index_add_(0, rows.cpu(), torch.ones(len(rows)))
    mean = lambda x: (torch.zeros(B).index_add_(0, rows.cpu(), x.cpu().float()) / count.clamp(min=1)).numpy()  # noqa: E731
    return {"logprob": mean(token_logp), "entropy": mean(entropy), "scored_tokens": count.numpy()}


def decoder_only(loaded: LoadedModel) -> Any:
    """The decoder stack without the unembedding: activations need no logits (the 262k-row
    unembedding is most of the 270M model's parameters)."""
    model = loaded.model
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", inner)
