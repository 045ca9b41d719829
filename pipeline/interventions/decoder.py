"""Greedy decoding of the same prompts under many steering sets in one pass (rows = set x prompt).

    from pipeline.interventions.sets import NeuronSets
    sets = NeuronSets([{3: [10, 12]}, {3: [7, 99]}], alphas=[0.0, 3.0])
    gens = generate_sets(lm, prompts, sets, max_new_tokens=8, batch_size=32)   # gens[k][i]

gens[k] is what `with sets.context(lm, k): generate(lm, prompts, ...)` returns, token for token:
prompts are sorted and cut into the same batches as generate's greedy path (so every batch has
the same padding and shared prefix), and each batch runs once for a group of sets, each row
steered by its own set (pipeline.interventions.sets). Computed once instead of once per set:

  the prompt prefill below the first steered layer (the shared few-shot prefix and every prompt's
    suffix run through layers 0..first-1 once, then their hidden states and key/value cache are
    copied to every set's rows); above it each set's rows run as usual;
  the Python and weight-reading overhead of a decode step, now shared by sets x prompts rows.

Rows leave the batch when they finish, as in pipeline.models.sampling. Where generate would not
take its shared-prefix path (prompts too long for the sliding window) or the decoder is not the
Gemma 3 text stack this module runs layer by layer, each set runs alone through generate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.interventions.sets import Rows, SteeringSets
    from pipeline.models import Generation, LoadedModel

MAX_ROWS = 512  # rows (sets x prompts) per pass; the key/value cache and the head's logits scale with it


class Stack:
    """Gemma 3's text decoder run layer by layer, as its own forward runs it (embedding, rotary
    tables and masks per layer type, decoder layers, final norm), so that a pass can stop after a
    layer and go on with more rows."""

    def __init__(self, dec: Any):
        self.dec = dec
        self.types = list(dec.config.layer_types)

    @classmethod
    def of(cls, lm: LoadedModel) -> Stack | None:
        from pipeline.models.sampling import _decoder

        dec = _decoder(lm)
        if type(dec).__name__ != "Gemma3TextModel" or getattr(dec.config, "use_bidirectional_attention", False):
            return None
        return cls(dec)

    def tables(self, embeds: Any, mask: Any, positions: Any, cache: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Attention masks and rotary tables per layer type, for rows shaped like `embeds`; made
        before a pass writes the cache, as the model's forward makes them."""
        from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

        kw = {"config": self.dec.config, "inputs_embeds": embeds, "attention_mask": mask, "past_key_values": cache,
              "position_ids": positions}
        masks = {"full_attention": create_causal_mask(**kw), "sliding_attention": create_sliding_window_causal_mask(**kw)}
        rope = {t: self.dec.rotary_emb(embeds, positions, t) for t in set(self.types)}
        return masks, rope

    def layers(self, h: Any, start: int, stop: int, tables: tuple[dict[str, Any], dict[str, Any]], positions: Any,
               cache: Any) -> Any:
        masks, rope = tables
        for i in range(start, stop):
            h = self.dec.layers[i](h, attention_mask=masks[self.types[i]], position_embeddings=rope[self.types[i]],
                                   position_ids=positions, past_key_values=cache)
        return h

    def split_pass(self, ids: Any, mask: Any, positions: Any, cache: Any, split: int, expand: Any, steer: Rows,
                   set_of_row: Any) -> Any:
        """Run ids (b, t): layers below `split` on the b rows, then layers from `split` on rows
        `expand` (R,) of them, each row steered by its set. Returns the normed hidden states (R, t, D)."""
        embeds = self.dec.embed_tokens(ids)  # (b, t, D)
        wide_mask = None if mask is None else mask[expand]
        wide_pos = positions[expand] if positions.shape[0] > 1 else positions
        low = self.tables(embeds, mask, positions, cache)
        high = self.tables(embeds[:1].expand(len(expand), -1, -1), wide_mask, wide_pos, cache)  # (shape only)
        h = self.layers(embeds, 0, split, low, positions, cache)[expand]
        steer.use(set_of_row)
        h = self.layers(h, split, len(self.types), high, wide_pos, cache)
        return self.dec.norm(h)


def _select_layers(cache: Any, layers: range, index: Any) -> None:
    for i in layers:
        cache.layers[i].batch_select_indices(index)


def prefill_sets(lm: LoadedModel, stack: Stack, rows: Sequence[Sequence[int]], n_sets: int, steer: Rows,
                 pad_id: int) -> tuple[Any, Any, Any, Any, Any]:
    """The prefill of sampling._prefill for n_sets x len(rows) rows (set-major: row s * n + i is set s,
    prompt i): the shared prefix once below the first steered layer and once per set above it, then
    the left-padded suffixes once below it and once per set above it. Returns the last hidden state
    per row (R, D), the cache, the attention mask, the next position per row and each row's set."""
    import torch
    from transformers import DynamicCache

    from pipeline.models.sampling import common_prefix

    n, split, L = len(rows), steer.first_layer, len(stack.types)
    p = common_prefix(rows)
    suffixes = [list(r[p:]) for r in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((n, width), dtype=torch.long)
    for i, s in enumerate(suffixes):
        ids[i, width - len(s):] = torch.tensor(s)
        suffix_mask[i, width - len(s):] = 1
    dev = lm.device
    set_of_row = torch.arange(n_sets * n, device=dev) // n  # (R,)
    item_of_row = torch.arange(n_sets * n) % n
    cache = DynamicCache(config=stack.dec.config)
    mask = suffix_mask
    if p:
        prefix = torch.tensor([list(rows[0][:p])], device=dev)  # (1, p)
        stack.split_pass(prefix, None, torch.arange(p, device=dev)[None], cache, split,
                         torch.zeros(n_sets, dtype=torch.long, device=dev), steer, torch.arange(n_sets, device=dev))
        _select_layers(cache, range(split), torch.zeros(n, dtype=torch.long, device=dev))  # shared: 1 -> n rows
        _select_layers(cache, range(split, L), set_of_row)  # steered layers: one row per set -> R rows
        mask = torch.cat([torch.ones(n, p, dtype=torch.long), suffix_mask], dim=1)
    positions = p + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = stack.split_pass(ids.to(dev), mask.to(dev), positions.to(dev), cache, split, item_of_row.to(dev), steer,
                              set_of_row)[:, -1]
    _select_layers(cache, range(split), item_of_row.to(dev))  # shared layers: n -> R rows
    return hidden, cache, mask[item_of_row], (positions[:, -1:] + 1)[item_of_row], set_of_row


def head_argmax(weight: Any, hidden: Any) -> Any:
    """(B, D) final hidden states -> (B,) greedy token ids: the float32 argmax of hidden @ weight.T,
    the first of tied maxima (torch.argmax's rule, the smallest id)."""
    return (hidden.float() @ weight.T).argmax(dim=-1)


def decode_sets(lm: LoadedModel, hidden: Any, cache: Any, mask: Any, next_pos: Any, set_of_row: Any, steer: Rows,
                max_new_tokens: int, stop_ids: set[int], eos: set[int], head_rows: int = 32) -> list[list[int]]:
    """sampling._decode with each row steered by its set: rows that finish leave the batch, and
    the hooks are told which sets the remaining rows belong to. The next token is the float32
    argmax of the full unembedding (the first of tied maxima, the smallest id, as ExactHead picks),
    read at most head_rows rows at a time so that the (rows, vocabulary) logits stay small. It is
    the token ExactHead (the one-set path's head) proves, computed without its bfloat16 first pass:
    on a CPU without bfloat16 instructions that pass runs at about 5 GFLOPS whatever the batch,
    float32 at 20-50 GFLOPS from 32 rows (`scripts/bench_steering.py --parts` prints both), and the
    head is most of a steered decode step."""
    import torch

    from pipeline.models.sampling import ExactHead, _decoder

    dec, weight, dev = _decoder(lm), ExactHead.of(lm).weight, lm.device

    def pick(h: Any) -> Any:
        return torch.cat([head_argmax(weight, part) for part in h.split(head_rows)])
    ending = torch.tensor(sorted(stop_ids | eos), dtype=torch.long)
    generated: list[list[int]] = [[] for _ in range(hidden.shape[0])]
    active = torch.arange(hidden.shape[0])
    for step in range(max_new_tokens):
        token = pick(hidden).cpu()
        for r, t in zip(active.tolist(), token.tolist(), strict=True):
            generated[r].append(int(t))
        going = ~torch.isin(token, ending)
        if not going.any() or step == max_new_tokens - 1:
            break
        if not going.all():
            keep = going.nonzero().flatten()
            cache.batch_select_indices(keep.to(dev))
            active, token, mask, next_pos = active[keep], token[keep], mask[keep], next_pos[keep]
            set_of_row = set_of_row[keep.to(dev)]
            steer.use(set_of_row)
        mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype)], dim=1)
        out = dec(input_ids=token.unsqueeze(-1).to(dev), attention_mask=mask.to(dev), position_ids=next_pos.to(dev),
                  past_key_values=cache, use_cache=True)
        cache, hidden, next_pos = out.past_key_values, out.last_hidden_state[:, -1], next_pos + 1
    return generated


def generate_sets(lm: LoadedModel, prompts: Sequence[str], sets: SteeringSets, max_new_tokens: int, *,
                  batch_size: int = 16, stop_strings: Sequence[str] = ("\n",), max_rows: int = MAX_ROWS,
                  progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> list[list[Generation]]:
    """Greedy continuations of every prompt under every set: result[k][i] is prompt i under set k,
    equal to generate(lm, prompts, max_new_tokens, batch_size=batch_size, stop_strings=stop_strings)
    run inside sets.context(lm, k). A pass holds at most max_rows rows (sets x a batch of prompts)."""
    import torch

    from pipeline.models import Generation, generate
    from pipeline.models.generate import _eos_ids, _finish
    from pipeline.models.sampling import fits_window, stop_token_ids

    if not prompts or not len(sets):
        return [[] for _ in range(len(sets))]
    tok = lm.tokenizer
    encoded = tok(list(prompts))["input_ids"]
    stack = Stack.of(lm)
    if stack is None or not fits_window(lm, encoded, max_new_tokens):
        out = []
        for k in range(len(sets)):
            with sets.context(lm, k):
                out.append(generate(lm, prompts, max_new_tokens, batch_size=batch_size, stop_strings=stop_strings))
        return out
    eos = _eos_ids(lm)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stop_ids = stop_token_ids(tok, stop_strings)
    order = sorted(range(len(encoded)), key=lambda i: encoded[i])  # as generate's greedy path batches them
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    per_pass = max(1, max_rows // batch_size)
    groups = [list(range(g, min(g + per_pass, len(sets)))) for g in range(0, len(sets), per_pass)]
    results: list[list[Generation | None]] = [[None] * len(prompts) for _ in range(len(sets))]
    passes = [(group, batch) for group in groups for batch in batches]
    for group, batch in progress(passes) if progress else passes:
        with torch.inference_mode(), sets.subset(group).install(lm) as steer:
            hidden, cache, mask, next_pos, set_of_row = prefill_sets(lm, stack, [encoded[i] for i in batch],
                                                                     len(group), steer, pad_id)
            rows = decode_sets(lm, hidden, cache, mask, next_pos, set_of_row, steer, max_new_tokens, stop_ids, eos,
                               head_rows=batch_size)
        for r, ids in enumerate(rows):
            k, i = group[r // len(batch)], batch[r % len(batch)]
            text, kept, reason = _finish(ids, tok, eos, stop_strings)
            results[k][i] = Generation(text=text, token_ids=kept, finish_reason=reason, prompt_index=i)
    return results  # type: ignore[return-value]


def next_token_logits(lm: LoadedModel, prompts: Sequence[str], sets: SteeringSets, max_rows: int = MAX_ROWS) -> Any:
    """The next-token logits at each prompt's end under each set, (sets, prompts, vocabulary): for
    set k what lm.model(**batch, logits_to_keep=1) gives on the left-padded prompts inside
    sets.context(lm, k), with the layers below the first steered layer run once for all sets."""
    import torch
    from transformers import DynamicCache

    enc = lm.tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left")
    stack = Stack.of(lm)
    if stack is None:
        out = []
        for k in range(len(sets)):
            with torch.inference_mode(), sets.context(lm, k):
                out.append(lm.model(**enc.to(lm.device), logits_to_keep=1).logits[:, -1])
        return torch.stack(out)
    dev, n = lm.device, len(prompts)
    ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
    positions = torch.arange(ids.shape[1], device=dev)[None]  # as the model numbers a batch it is given
    head, cap = lm.model.get_output_embeddings(), getattr(lm.config, "final_logit_softcapping", None)
    per_pass = max(1, max_rows // n)
    out = []
    for g in range(0, len(sets), per_pass):
        group = list(range(g, min(g + per_pass, len(sets))))
        set_of_row = torch.arange(len(group) * n, device=dev) // n
        with torch.inference_mode(), sets.subset(group).install(lm) as steer:
            h = stack.split_pass(ids, mask, positions, DynamicCache(config=stack.dec.config), steer.first_layer,
                                 torch.arange(len(group) * n, device=dev) % n, steer, set_of_row)
            logits = head(h[:, -1:])  # (R, 1, V), then the model's final soft-capping
            if cap is not None:
                logits = torch.tanh(logits / cap) * cap
        out.append(logits[:, -1].reshape(len(group), n, -1))
    return torch.cat(out)
