"""Greedy decoding and nucleus sampling of k answers per prompt, fast on a CPU.

Transformers' sampler sorts the whole 262k-token vocabulary at every step for top-p and draws
from all of it, and prefills each prompt once per sample; on 2 cores that is most of the time.
Here prompts that share a prefix (few-shot examples) compute it once, each prompt is prefilled
once and its KV cache repeated k times, rows leave the batch as soon as they finish, and top-p
runs on the `CANDIDATES` most likely tokens, which is exact whenever they hold at least top_p of
the mass (a row where they do not falls back to the full sort). Greedy steps find the float32
argmax mostly in bfloat16, with a bound that proves it (`ExactHead`); sampling keeps float32
logits, since the nucleus needs every token's probability. Stopping is per row: eos,
or a token whose text contains a stop string.
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


class ExactHead:
    """Greedy next tokens without the full float32 unembedding, and provably the same tokens.

    The 262,144 x 640 unembedding is most of a greedy decode step's time on a CPU. Logits are
    computed in bfloat16 first (about 3x faster); the top CANDIDATE_K tokens are then scored in
    float32 exactly. For any token j, with dW and dh the exact residuals of rounding W and h to
    bfloat16 (products accumulated in float32 into a bfloat16 output),

        |l_j - l~_j| <= ||dW_j|| ||h|| + ||W~_j|| ||dh|| + 2^-8 |l~_j| + 2^-14 ||W~_j|| ||h~||,

    so every token outside the candidates lies below l~_(K+1) (the best bfloat16 logit left out)
    plus the largest such bound. When the best exact candidate beats that, it is the float32
    argmax; otherwise the row is scored in full float32 (`fallbacks` counts those rows). Final
    logit soft-capping (tanh) is monotone and leaves the argmax alone.
    """

    CANDIDATE_K = 16
    MARGIN = 1.25

    def __init__(self, weight: Any):
        import torch

        self.weight = weight.detach().float()  # (V, D), the tied unembedding
        self.weight_bf16 = self.weight.to(torch.bfloat16)
        self.max_residual = float((self.weight - self.weight_bf16.float()).norm(dim=-1).max())  # max ||dW_j||
        self.max_rounded = float(self.weight_bf16.float().norm(dim=-1).max())  # max ||W~_j||
        self.fallbacks = 0
        self.rows = 0

    @classmethod
    def of(cls, loaded: LoadedModel) -> ExactHead:
        head = getattr(loaded, "_exact_head", None)
        if head is None:
            head = cls(loaded.model.get_output_embeddings().weight)
            loaded._exact_head = head
        return head

    def argmax(self, hidden: Any) -> Any:
        """(B, D) final hidden states -> (B,) token ids, equal to (hidden @ W.T).argmax(-1)."""
        import torch

        h = hidden.float()
        h_bf16 = h.to(torch.bfloat16)
        approx = (h_bf16 @ self.weight_bf16.T).float()  # (B, V)
        top = approx.topk(self.CANDIDATE_K + 1, dim=-1)
        cand, left_out = top.indices[:, :-1], top.values[:, -1]  # (B, K), (B,)
        exact = torch.einsum("bd,bkd->bk", h, self.weight[cand])  # (B, K)
        best = exact.max(dim=-1).values
        tied = torch.where(exact == best[:, None], cand, torch.full_like(cand, 1 << 62))
        token = tied.min(dim=-1).values  # among exact ties the smallest id, as a full argmax picks
        dh = (h - h_bf16.float()).norm(dim=-1)
        bound = self.MARGIN * (self.max_residual * h.norm(dim=-1) + self.max_rounded * dh
                               + 2.0**-8 * left_out.abs() + 2.0**-14 * self.max_rounded * h_bf16.float().norm(dim=-1))
        unsure = left_out + bound >= best
        self.fallbacks += int(unsure.sum())
        self.rows += len(token)
        if unsure.any():
            token[unsure] = (h[unsure] @ self.weight.T).argmax(dim=-1)
        return token


def _decoder(loaded: LoadedModel) -> Any:
    model = loaded.model
    inner = getattr(model, "model", model)
    return getattr(inner, "language_model", inner)


def _prefill(loaded: LoadedModel, rows: Sequence[Sequence[int]], pad_id: int, repeats: int = 1,
             share: bool = True) -> tuple[Any, Any, Any, Any]:
    """Run token rows that share a prefix (e.g. the same few-shot examples): the prefix once, its
    KV cache repeated, then the left-padded suffixes after it, positions continuing from the
    prefix; each row repeated `repeats` times (samples). Returns the last hidden state per row
    (B*repeats, D), the cache, the attention mask and the next position per row."""
    import torch

    dec = _decoder(loaded)
    device = loaded.device
    p = common_prefix(rows) if share else 0
    B = len(rows)
    suffixes = [list(r[p:]) for r in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((B, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((B, width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, width - len(s):] = torch.tensor(s)
        suffix_mask[i, width - len(s):] = 1
    cache = None
    mask = suffix_mask
    if p:
        out = dec(input_ids=torch.tensor([list(rows[0][:p])], device=device), use_cache=True)
        cache = out.past_key_values
        cache.batch_repeat_interleave(B)
        mask = torch.cat([torch.ones(B, p, dtype=torch.long), suffix_mask], dim=1)
    positions = p + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    out = dec(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
              past_key_values=cache, use_cache=True)
    cache, hidden = out.past_key_values, out.last_hidden_state[:, -1]
    next_pos = positions[:, -1:] + 1
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)
        hidden = hidden.repeat_interleave(repeats, dim=0)
        mask = mask.repeat_interleave(repeats, dim=0)
        next_pos = next_pos.repeat_interleave(repeats, dim=0)
    return hidden, cache, mask, next_pos


def _decode(loaded: LoadedModel, hidden: Any, cache: Any, mask: Any, next_pos: Any, max_new_tokens: int,
            pick: Any, stop_ids: set[int], eos: set[int]) -> list[list[int]]:
    """Decode until every row has produced eos or a stop token (or max_new_tokens); finished rows
    leave the batch (their cache rows are dropped), so a step costs only the rows still going."""
    import torch

    dec = _decoder(loaded)
    device = loaded.device
    rows = hidden.shape[0]
    ending = torch.tensor(sorted(stop_ids | eos), dtype=torch.long)
    generated: list[list[int]] = [[] for _ in range(rows)]
    active = torch.arange(rows)  # original row of each batch row
    for step in range(max_new_tokens):
        token = pick(hidden).cpu()
        for r, t in zip(active.tolist(), token.tolist(), strict=True):
            generated[r].append(int(t))
        going = ~torch.isin(token, ending)
        if not going.any() or step == max_new_tokens - 1:
            break
        if not going.all():
            keep = going.nonzero().flatten()
            cache.batch_select_indices(keep.to(device))
            active, token, mask, next_pos = active[keep], token[keep], mask[keep], next_pos[keep]
        mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype)], dim=1)
        out = dec(input_ids=token.unsqueeze(-1).to(device), attention_mask=mask.to(device),
                  position_ids=next_pos.to(device), past_key_values=cache, use_cache=True)
        cache, hidden, next_pos = out.past_key_values, out.last_hidden_state[:, -1], next_pos + 1
    return generated


def fits_window(loaded: LoadedModel, rows: Sequence[Sequence[int]], max_new_tokens: int) -> bool:
    """Whether padding between a shared prefix and the suffixes stays inside the sliding window
    (beyond it, the padding would push the prefix out of the window)."""
    window = getattr(loaded.config, "sliding_window", None)
    return not (window and max(map(len, rows)) + max_new_tokens > window)


def sample_batch(loaded: LoadedModel, rows: Sequence[Sequence[int]], pad_id: int, k: int, max_new_tokens: int,
                 temperature: float, top_p: float, generator: Any, stop_ids: set[int], eos: set[int]) -> list[list[int]]:
    """k sampled continuations per prompt row (token ids); returns token ids per (prompt, sample),
    prompt-major, each ending at (and including) the first eos or stop token."""
    import torch

    hidden, cache, mask, next_pos = _prefill(loaded, rows, pad_id, repeats=k,
                                             share=fits_window(loaded, rows, max_new_tokens))

    unembed = loaded.model.get_output_embeddings()
    cap = getattr(loaded.config, "final_logit_softcapping", None)

    def pick(h: Any) -> Any:  # float32 logits: the nucleus needs every token's probability
        logits = unembed(h)
        return nucleus(torch.tanh(logits / cap) * cap if cap else logits, temperature, top_p, generator)

    return _decode(loaded, hidden, cache, mask, next_pos, max_new_tokens, pick, stop_ids, eos)


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all rows share, leaving every row at least one token."""
    n = min(len(r) for r in rows) - 1
    for i in range(max(n, 0)):
        if any(r[i] != rows[0][i] for r in rows):
            return i
    return max(n, 0)


def greedy_batch(loaded: LoadedModel, rows: Sequence[Sequence[int]], pad_id: int, max_new_tokens: int,
                 stop_ids: set[int], eos: set[int]) -> list[list[int]]:
    """Greedy continuations of token rows that share a prefix (e.g. the same few-shot examples),
    scored with ExactHead (the float32 argmax, found mostly in bfloat16). Returns ids per row up to
    and including the first eos or stop token."""
    hidden, cache, mask, next_pos = _prefill(loaded, rows, pad_id)
    return _decode(loaded, hidden, cache, mask, next_pos, max_new_tokens, ExactHead.of(loaded).argmax,
                   stop_ids, eos)
