"""Step 4: every SAE's activations on every concept sentence, and on every cumulative fragment.

One decoder pass per batch of sentences reads the residual stream after every configured layer
(residuals.read_layers: decoder only, stopping after the deepest layer); every SAE encodes its
layer from that same pass. Attention is causal, so the activation at token t of the full sentence
is exactly the activation of the fragment that ends at t ("I", "I lied", "I lied to", ...): the
fragments are the prefix positions of the one pass, never re-run (tests/test_saefeatures.py
proves equality with running each fragment alone; scripts/bench_sae.py times both).

Output, one compressed .npz per SAE (`sae_L<layer>`):
  final      (n_sentences, d_sae)  at each sentence's last token
  fragments  (n_fragments, d_sae)  at every position after <bos>, row order = sentence then position
  sentence, position, token        (n_fragments,) which sentence, which token position, which token
with the sentences (id, concept, label, text, token strings) in the result. Checkpointed per batch:
an interrupted run resumes where it stopped and ends with the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from claims import Result
from pipeline.saefeatures.config import ExtractionConfig as Config
from pipeline.saefeatures.config import SAEConfig

PACKAGES = ("sae-lens",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"saes": ("pipeline.saefeatures.saes", Config(**config).upstream(SAEConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.saefeatures.concepts import data_hash, folder

    return {"model": fingerprint(config["profile"]), "concept_data": data_hash(folder(Config(**config).concept_data))}


def encode_batch(lm: Any, dictionaries: Sequence[Any], texts: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray, Any]:
    """One decoder pass over `texts`: per dictionary (B, T, width) codes at every position, the
    number of real tokens per text (with <bos>), and the token ids (B, T)."""
    from pipeline.saefeatures.residuals import read_layers, tokenize

    ids, mask = tokenize(lm.tokenizer, texts)
    acts = read_layers(lm, ids, mask, [d.layer for d in dictionaries])
    return [d.encode(acts[d.layer]).numpy() for d in dictionaries], mask.sum(dim=1).numpy(), ids


def naive_fragments(lm: Any, dictionaries: Sequence[Any], text: str) -> list[np.ndarray]:
    """The seed workspace's design, for the equality test and the benchmark: every fragment run on
    its own, once per SAE. Per dictionary (n_tokens - 1, width), one row per fragment."""
    import torch

    from pipeline.saefeatures.residuals import read_layers, tokenize

    ids, _ = tokenize(lm.tokenizer, [text])
    out = []
    for d in dictionaries:
        rows = []
        for end in range(2, ids.shape[1] + 1):  # fragment = <bos> + tokens 1..end-1
            frag = ids[:, :end]
            h = read_layers(lm, frag, torch.ones_like(frag), [d.layer])[d.layer]
            rows.append(d.encode(h[:, -1]).numpy()[0])
        out.append(np.stack(rows))
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.models import load
    from pipeline.saefeatures.concepts import folder, read_all
    from pipeline.saefeatures.dictionary import load_saes

    cfg = Config(**config)
    rows = read_all(cfg.concepts, folder(cfg.concept_data))
    lm = load(cfg.profile)
    saes = load_saes(ctx.upstream("saes"))
    ckpt = ctx.checkpoint("batches")
    starts = range(0, len(rows), cfg.extract_batch_size)
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc="concept sentences, all SAEs")):
        if b in ckpt:
            continue
        part = rows[start:start + cfg.extract_batch_size]
        codes, lengths, ids = encode_batch(lm, saes, [r["sentence"] for r in part])
        out: dict[str, np.ndarray] = {"lengths": lengths.astype(np.int32),
                                      "tokens": np.concatenate([ids[j, 1:n].numpy() for j, n in enumerate(lengths)])}
        for i, c in enumerate(codes):
            out[f"final{i}"] = np.stack([c[j, n - 1] for j, n in enumerate(lengths)])
            if cfg.fragments:
                out[f"frag{i}"] = np.concatenate([c[j, 1:n] for j, n in enumerate(lengths)])
        ckpt[b] = out
    parts = [ckpt[b] for b in range(len(starts))]
    lengths = np.concatenate([p["lengths"] for p in parts])
    sentence = np.repeat(np.arange(len(rows)), lengths - 1).astype(np.int32)
    position = np.concatenate([np.arange(1, n) for n in lengths]).astype(np.int32)
    tokens = np.concatenate([p["tokens"] for p in parts]).astype(np.int32)
    for i, d in enumerate(saes):
        arrays = {"final": np.concatenate([p[f"final{i}"] for p in parts]), "sentence": sentence,
                  "position": position, "token": tokens}
        if cfg.fragments:
            arrays["fragments"] = np.concatenate([p[f"frag{i}"] for p in parts])
        ctx.save_arrays(f"sae_L{d.layer}", **arrays)
    pieces = [lm.tokenizer.decode([int(t)]) for t in tokens]
    sentences = [{**r, "pieces": pieces[a:b]} for r, a, b in
                 zip(rows, np.concatenate([[0], np.cumsum(lengths - 1)[:-1]]), np.cumsum(lengths - 1), strict=True)]
    return Result(values={
        "sentences": sentences, "concepts": list(cfg.concepts), "concept_data": cfg.concept_data, "layers": [d.layer for d in saes],
        "widths": [d.width for d in saes], "neuronpedia_ids": [d.neuronpedia_id for d in saes],
        "n_sentences": len(rows), "n_fragments": int(len(sentence)), "fragments_kept": cfg.fragments,
        "tokens_per_sentence_mean": float((lengths - 1).mean()),
        "forward_passes": len(starts)})
