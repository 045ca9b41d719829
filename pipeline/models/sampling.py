"""Nucleus sampling of k answers per prompt, fast on a CPU.

Transformers' sampler sorts the whole 262k-token vocabulary at every step for top-p and draws
from all of it, and prefills each prompt once per sample; on 2 cores that is most of the time.
Here each prompt is prefilled once and its KV cache repeated k times, and top-p runs on the
`CANDIDATES` most likely tokens, which is exact whenever they hold at least top_p of the mass
(a row where they do not falls back to the full sort). Stopping is per row: eos, or a token
whose text contains a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.models.loaded import LoadedModel

CANDIDATES = 1024


def nucleus(logits: Any, temperature: float, top_p: float, generator: Any) -> Any:
    """Draw one token per row (B, V) -> (B,) from the top-p nucleus of softmax(logits / T)."""
    import torch

    probs = torch.softmax(logits.float() / temperature, dim=-1)
    k = min(CANDIDATES, probs.shape[-1])
    top, idx = probs.topk(k, dim=-1)  # sorted, descending
    short = top.sum(-1) < top_p
    if short.any():  # rare: the candidates miss top_p of the mass; use the full sort for those rows
        full, full_idx = probs[short].sort(dim=-1, descending=True)
        top, idx = top.clone(), idx.clone()
        return _draw_mixed(probs, top, idx, short, full, full_idx, top_p, generator)
    return idx.gather(-1, _draw(top, top_p, generator)).squeeze(-1)


def _draw(sorted_probs: Any, top_p: float, generator: Any) -> Any:
    import torch

    before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each token
    kept = sorted_probs.masked_fill(before >= top_p, 0.0)  # the smallest prefix reaching top_p
    return torch.multinomial(kept, 1, generator=generator)


def _draw_mixed(probs: Any, top: Any, idx: Any, short: Any, full: Any, full_idx: Any, top_p: float,
                generator: Any) -> Any:
    import torch

    out = torch.empty(probs.shape[0], dtype=torch.long)
    rows = torch.arange(probs.shape[0])
    out[~short] = idx[~short].gather(-1, _draw(top[~short], top_p, generator)).squeeze(-1)
    out[rows[short]] = full_idx.gather(-1, _draw(full, top_p, generator)).squeeze(-1)
    return out


_STOP_IDS: dict[tuple[int, tuple[str, ...]], set[int]] = {}


def stop_token_ids(tokenizer: Any, stops: Sequence[str]) -> set[int]:
    """Ids of vocabulary tokens whose text contains a stop string (e.g. every token with a newline);
    computed once per tokenizer (a scan of the vocabulary)."""
    key = (id(tokenizer), tuple(stops))
    if key not in _STOP_IDS:
        _STOP_IDS[key] = _scan(tokenizer, stops)
    return _STOP_IDS[key]


def _scan(tokenizer: Any, stops: Sequence[str]) -> set[int]:
    if not stops:
        return set()
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out = set()
    for i, piece in enumerate(vocab):
        if piece is None:
            continue
        text = tokenizer.convert_tokens_to_string([piece])
        if any(s in text for s in stops):
            out.add(i)
    return out


def sample_batch(loaded: LoadedModel, input_ids: Any, attention_mask: Any, k: int, max_new_tokens: int,
                 temperature: float, top_p: float, generator: Any, stop_ids: set[int], eos: set[int]) -> list[list[int]]:
    """k sampled continuations per left-padded prompt row; returns token ids per (prompt, sample),
    prompt-major, each ending at (and including) the first eos or stop token."""
    import torch

    model = loaded.model
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    logits = out.logits[:, -1].repeat_interleave(k, dim=0)  # (B*k, V)
    mask = attention_mask.repeat_interleave(k, dim=0)
    next_pos = position_ids[:, -1:].repeat_interleave(k, dim=0) + 1
    rows = logits.shape[0]
    done = torch.zeros(rows, dtype=torch.bool)
    ending = torch.tensor(sorted(stop_ids | eos), dtype=torch.long)
    generated: list[list[int]] = [[] for _ in range(rows)]
    for step in range(max_new_tokens):
        token = nucleus(logits, temperature, top_p, generator)
        for r in (~done).nonzero().flatten().tolist():
            generated[r].append(int(token[r]))
        done |= torch.isin(token, ending)
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype)], dim=1)
        out = model(input_ids=token.unsqueeze(-1), attention_mask=mask, position_ids=next_pos,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, logits, next_pos = out.past_key_values, out.logits[:, -1], next_pos + 1
    return generated


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all rows share, leaving every row at least one token."""
    n = min(len(r) for r in rows) - 1
    for i in range(max(n, 0)):
        if any(r[i] != rows[0][i] for r in rows):
            return i
    return max(n, 0)


def greedy_batch(loaded: LoadedModel, rows: Sequence[Sequence[int]], pad_id: int, max_new_tokens: int,
                 stop_ids: set[int], eos: set[int]) -> list[list[int]]:
    """Greedy continuations of token rows that share a prefix (e.g. the same few-shot examples):
    the prefix is computed once and its KV cache repeated for every row; the differing suffixes are
    left-padded after it, with positions continuing from the prefix. Returns ids per row up to and
    including the first eos or stop token."""
    import torch

    model = loaded.model
    p = common_prefix(rows)
    B = len(rows)
    suffixes = [list(r[p:]) for r in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((B, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((B, width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, width - len(s):] = torch.tensor(s)
        suffix_mask[i, width - len(s):] = 1
    device = loaded.device
    cache = None
    mask = suffix_mask
    if p:
        prefix = torch.tensor([list(rows[0][:p])], device=device)
        out = model(input_ids=prefix, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(B)
        mask = torch.cat([torch.ones(B, p, dtype=torch.long), suffix_mask], dim=1)
    positions = p + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache, logits = out.past_key_values, out.logits[:, -1]
    next_pos = positions[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool)
    ending = torch.tensor(sorted(stop_ids | eos), dtype=torch.long)
    generated: list[list[int]] = [[] for _ in range(B)]
    for step in range(max_new_tokens):
        token = logits.argmax(dim=-1).cpu()
        for r in (~done).nonzero().flatten().tolist():
            generated[r].append(int(token[r]))
        done |= torch.isin(token, ending)
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1)
        out = model(input_ids=token.unsqueeze(-1).to(device), attention_mask=mask.to(device),
                    position_ids=next_pos.to(device), past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache, logits, next_pos = out.past_key_values, out.logits[:, -1], next_pos + 1
    return generated
