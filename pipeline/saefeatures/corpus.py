"""Step 1: the text the SAEs are trained and judged on, from Debian packages (sources.py;
pipeline/saefeatures/README.md says which and why, and the token budget).

Each source's documents are shuffled with the seed and split into held-out and training
documents (held-out documents fill their quota first), so that no held-out document shares a
sentence with training. Within a split, a source's documents are tokenized and packed into
sequences of `seq_len` tokens: <bos> followed by consecutive documents of that one source,
separated by a blank line. Every source gets an equal share of the sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from claims import Result
from pipeline.saefeatures.config import CorpusConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.saefeatures.sources import fingerprint as source_fingerprint

    cfg = Config(**config)
    return {"tokenizer": fingerprint(cfg.profile),
            "sources": {s: source_fingerprint(s, Path(cfg.root)) for s in cfg.sources}}


def quotas(total: int, n_sources: int) -> list[int]:
    """Sequences per source: equal shares, the remainder to the first sources."""
    return [total // n_sources + (i < total % n_sources) for i in range(n_sources)]


def pack(stream: Any, tokenizer: Any, n: int, seq_len: int) -> tuple[list[list[int]], list[list[str]]]:
    """n sequences of <bos> + (seq_len - 1) tokens from consecutive documents of `stream`, and the
    ids of the documents each sequence draws on. Fewer when the stream runs out."""
    body = seq_len - 1
    sequences: list[list[int]] = []
    docs: list[list[str]] = []
    buffer: list[int] = []
    owners: list[str] = []
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    for doc_id, text in stream:
        if len(sequences) >= n:
            break
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + separator
        buffer += ids
        owners += [doc_id] * len(ids)
        while len(buffer) >= body and len(sequences) < n:
            sequences.append([tokenizer.bos_token_id, *buffer[:body]])
            docs.append(sorted(set(owners[:body])))
            buffer, owners = buffer[body:], owners[body:]
    return sequences, docs


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.models import load
    from pipeline.saefeatures.sources import documents

    cfg = Config(**config)
    tokenizer = load(cfg.profile).tokenizer
    split: dict[str, dict[str, list[Any]]] = {"train": {"ids": [], "docs": [], "source": []},
                                              "heldout": {"ids": [], "docs": [], "source": []}}
    counts: dict[str, dict[str, int]] = {}
    wanted = {"heldout": quotas(cfg.heldout_sequences, len(cfg.sources)),
              "train": quotas(cfg.train_sequences, len(cfg.sources))}
    for s, source in enumerate(ctx.progress(cfg.sources, total=len(cfg.sources), desc="corpus sources")):
        docs = list(documents(source, Path(cfg.root)))
        order = np.random.default_rng([cfg.seed, s]).permutation(len(docs))
        stream = (docs[i] for i in order)  # one stream: held-out documents first, the rest for training
        counts[source] = {"documents": len(docs)}
        for name in ("heldout", "train"):
            ids, owners = pack(stream, tokenizer, wanted[name][s], cfg.seq_len)
            if len(ids) < wanted[name][s]:
                raise ValueError(f"corpus source {source!r} ran out of text: {len(ids)} of {wanted[name][s]} "
                                 f"{name} sequences of {cfg.seq_len} tokens")
            split[name]["ids"] += ids
            split[name]["docs"] += owners
            split[name]["source"] += [source] * len(ids)
            counts[source][f"{name}_sequences"] = len(ids)
            counts[source][f"{name}_documents"] = len({d for o in owners for d in o})
    shared = {d for o in split["train"]["docs"] for d in o} & {d for o in split["heldout"]["docs"] for d in o}
    if shared:  # cannot happen by construction (each split packs its own documents)
        raise RuntimeError(f"documents on both sides of the held-out split: {sorted(shared)[:3]}")
    arrays = {name: np.array(part["ids"], dtype=np.int32).reshape(-1, cfg.seq_len) for name, part in split.items()}
    ctx.save_arrays("tokens", **arrays)
    pieces = [[tokenizer.decode([t]) for t in row] for row in split["heldout"]["ids"]]
    ctx.save_json("sequences", {name: {"docs": part["docs"], "source": part["source"]} for name, part in split.items()}
                  | {"heldout_pieces": pieces})
    return Result(values={
        "sources": list(cfg.sources), "per_source": counts, "seq_len": cfg.seq_len,
        "n_train_sequences": int(arrays["train"].shape[0]), "n_heldout_sequences": int(arrays["heldout"].shape[0]),
        "train_tokens": int(arrays["train"].size), "heldout_tokens": int(arrays["heldout"].size),
        "example": {s: next((tokenizer.decode(row[1:]) for row, src in zip(split["heldout"]["ids"],
                                                                           split["heldout"]["source"], strict=True)
                             if src == s), "") for s in cfg.sources},
    })
