"""Batched, seeded text generation with left padding and stop strings (a newline by default).

Results do not depend on what ran before: each batch runs under its own seed, derived from
(seed, batch index), inside `torch.random.fork_rng` so the caller's RNG state is untouched.
They do depend on `batch_size` when sampling (the batch seeds change); greedy output does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pipeline.models.loaded import LoadedModel

FinishReason = Literal["eos", "stop", "length"]


@dataclass(frozen=True)
class Generation:
    """One continuation of one prompt.

    `text` is the decoded continuation cut before the first stop string; `token_ids` are the
    generated ids up to and including the token that completed the stop string (without eos or
    padding). `finish_reason`: "eos" (end-of-sequence token), "stop" (a stop string appeared),
    "length" (max_new_tokens reached: the answer may be truncated).
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    prompt_index: int
    sample_index: int = 0


def batch_seed(seed: int, batch_index: int) -> int:
    """A 63-bit torch seed for one batch, independent of every other batch."""
    digest = hashlib.sha256(f"{seed}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _eos_ids(loaded: LoadedModel) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(loaded.model, "generation_config", None), loaded.tokenizer):
        value = getattr(source, "eos_token_id", None)
        if value is not None:
            ids.update([value] if isinstance(value, int) else value)
    return ids


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, width - len(row) :] = 1
    return input_ids, attention_mask  # (B, T) each


def _stop_criterion(tokenizer: Any, prompt_len: int, stops: Sequence[str]) -> Any:
    """A per-row StoppingCriteria: a row is done once its continuation contains a stop string."""
    import torch
    from transformers import StoppingCriteria

    class _StopStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            new = input_ids[:, prompt_len:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            done = [any(s in text for s in stops) for text in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return _StopStrings()


def _finish(
    ids: list[int], tokenizer: Any, eos: set[int], stops: Sequence[str]
) -> tuple[str, tuple[int, ...], FinishReason]:
    """Cut one row's generated ids at eos or at the first stop string."""
    kept: list[int] = []
    for token in ids:
        if token in eos:
            return tokenizer.decode(kept, skip_special_tokens=True), tuple(kept), "eos"
        kept.append(token)
        if stops:
            text = tokenizer.decode(kept, skip_special_tokens=True)
            cuts = [text.index(s) for s in stops if s in text]
            if cuts:
                return text[: min(cuts)], tuple(kept), "stop"
    return tokenizer.decode(kept, skip_special_tokens=True), tuple(kept), "length"


def generation_config(
    loaded: LoadedModel, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float
) -> Any:
    """An explicit GenerationConfig: nothing inherited from the checkpoint's sampling defaults."""
    from transformers import GenerationConfig

    tok = loaded.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    # Gemma checkpoints ship top_k=64; an explicit 0 disables it (only meaningful when sampling).
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=sorted(_eos_ids(loaded)),
        bos_token_id=tok.bos_token_id,
        **sampling,
    )


def generate(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    num_samples: int = 1,
    batch_size: int = 16,
    stop_strings: Sequence[str] = ("\n",),
    add_special_tokens: bool = True,
    share_prefix: bool = True,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> list[Generation]:
    """Continue each prompt; returns `num_samples` Generations per prompt, prompt-major order.

    Greedy by default. With `do_sample=True`, each prompt is repeated `num_samples` times inside
    the batches (one forward pass serves all its samples). A batch stops early once every row has
    produced a stop string or eos; `stop_strings=()` disables stopping on text. Prompts are raw
    text: the tokenizer adds <bos> unless `add_special_tokens=False` (e.g. for chat-templated text).
    Greedy decoding groups prompts that share a prefix (few-shot examples) into the same batch and
    computes that prefix once (`share_prefix=False`: transformers' generate on left-padded batches).
    """
    import torch

    if num_samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("num_samples, batch_size and max_new_tokens must be >= 1")
    if num_samples > 1 and not do_sample:
        raise ValueError("num_samples > 1 needs do_sample=True (greedy samples would be identical)")
    if not prompts:
        return []
    tok, model = loaded.tokenizer, loaded.model
    eos = _eos_ids(loaded)
    config = generation_config(loaded, max_new_tokens, do_sample, temperature, top_p)
    jobs = [(p, s) for p in range(len(prompts)) for s in range(num_samples)]
    encoded = tok(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]
    batches = [jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)]
    results: list[Generation] = []
    device = loaded.device
    rng_devices = (
        [device.index or 0] if device.type == "cuda" else []
    )  # forked so the caller's RNG is untouched
    if do_sample:
        return _sample(loaded, encoded, max_new_tokens, temperature, top_p, seed, num_samples, batch_size,
                       stop_strings, progress)
    window = getattr(loaded.config, "sliding_window", None)
    if share_prefix and not (window and max(map(len, encoded)) + max_new_tokens > window):
        # (padding sits between the shared prefix and each suffix; beyond the sliding window it
        # would push the prefix out of the window, so long prompts take the plain path)
        return _greedy(loaded, encoded, max_new_tokens, batch_size, stop_strings, progress)
    for b, batch in enumerate(progress(batches) if progress else batches):
        input_ids, attention_mask = _left_pad([encoded[p] for p, _ in batch], config.pad_token_id)
        prompt_len = input_ids.shape[1]
        stopping = [_stop_criterion(tok, prompt_len, stop_strings)] if stop_strings else []
        with torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            torch.manual_seed(batch_seed(seed, b))
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                stopping_criteria=stopping,
            )  # (B, prompt_len + new)
        for row, (p, s) in enumerate(batch):
            text, ids, reason = _finish(out[row, prompt_len:].tolist(), tok, eos, stop_strings)
            results.append(
                Generation(text=text, token_ids=ids, finish_reason=reason, prompt_index=p, sample_index=s)
            )
    return results


def _sample(loaded: LoadedModel, encoded: list[list[int]], max_new_tokens: int, temperature: float, top_p: float,
            seed: int, num_samples: int, batch_size: int, stop_strings: Sequence[str],
            progress: Callable[[Iterable[Any]], Iterable[Any]] | None) -> list[Generation]:
    """Sampling through pipeline.models.sampling: one prefill per prompt serves its samples."""
    import torch

    from pipeline.models.sampling import sample_batch, stop_token_ids

    tok = loaded.tokenizer
    eos = _eos_ids(loaded)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stop_ids = stop_token_ids(tok, stop_strings)
    per_batch = max(1, batch_size // num_samples)  # prompts per batch; each brings num_samples rows
    order = sorted(range(len(encoded)), key=lambda i: encoded[i])  # prompts sharing shots share a batch
    batches = [order[i : i + per_batch] for i in range(0, len(order), per_batch)]
    results: dict[tuple[int, int], Generation] = {}
    for b, batch in enumerate(progress(batches) if progress else batches):
        generator = torch.Generator().manual_seed(batch_seed(seed, b))
        with torch.inference_mode():
            rows = sample_batch(loaded, [encoded[i] for i in batch], pad_id, num_samples, max_new_tokens,
                                temperature, top_p, generator, stop_ids, eos)
        for r, ids in enumerate(rows):
            text, kept, reason = _finish(ids, tok, eos, stop_strings)
            p, s = batch[r // num_samples], r % num_samples
            results[(p, s)] = Generation(text=text, token_ids=kept, finish_reason=reason, prompt_index=p,
                                         sample_index=s)
    return [results[(p, s)] for p in range(len(encoded)) for s in range(num_samples)]


def _greedy(loaded: LoadedModel, encoded: list[list[int]], max_new_tokens: int, batch_size: int,
            stop_strings: Sequence[str], progress: Callable[[Iterable[Any]], Iterable[Any]] | None) -> list[Generation]:
    """Greedy decoding through pipeline.models.sampling.greedy_batch, prompts sorted by their tokens
    so that those sharing few-shot examples share a batch and its prefix computation."""
    import torch

    from pipeline.models.sampling import greedy_batch, stop_token_ids

    tok = loaded.tokenizer
    eos = _eos_ids(loaded)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stop_ids = stop_token_ids(tok, stop_strings)
    order = sorted(range(len(encoded)), key=lambda i: encoded[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    results: dict[int, Generation] = {}
    for batch in progress(batches) if progress else batches:
        with torch.inference_mode():
            rows = greedy_batch(loaded, [encoded[i] for i in batch], pad_id, max_new_tokens, stop_ids, eos)
        for i, ids in zip(batch, rows, strict=True):
            text, kept, reason = _finish(ids, tok, eos, stop_strings)
            results[i] = Generation(text=text, token_ids=kept, finish_reason=reason, prompt_index=i)
    return [results[i] for i in range(len(encoded))]
