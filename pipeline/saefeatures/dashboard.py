"""What a feature page shows besides the scores: the sentences and corpus snippets a feature fires
on most, token by token (a static feature dashboard; site_build/features.py renders it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _tokens(pieces: list[str], acts: np.ndarray) -> list[list[Any]]:
    """[[token text, activation rounded], ...] for a template to shade."""
    return [[p, round(float(a), 4)] for p, a in zip(pieces, acts, strict=True)]


def sentence_examples(features: Any, sae: int, index: int, n: int) -> list[dict[str, Any]]:
    """The concept sentences with the highest activation of a latent (max over fragments), with the
    activation at every fragment: the token where the feature switches on shows which words carry it."""
    a = features.arrays[sae]
    out = []
    for j, row in enumerate(features.rows):
        s = features.sentences[j]
        acts = a["fragments"][a["sentence"] == row][:, index] if "fragments" in a else np.zeros(len(s["pieces"]))
        out.append({"id": s["id"], "label": s["label"], "max": float(acts.max()) if len(acts) else 0.0,
                    "tokens": _tokens(s["pieces"], acts)})
    out.sort(key=lambda e: (-e["max"], e["id"]))
    return out[:n]


def corpus_snippets(codes: dict[str, np.ndarray], pieces: list[list[str]], index: int, n: int, radius: int
                    ) -> list[dict[str, Any]]:
    """The held-out corpus positions where a latent fires most (at most one per sequence), each with
    `radius` tokens either side and the latent's activation on every one of them."""
    n_seq, n_pos, _ = codes["shape"].tolist()
    mine = codes["cols"] == index
    rows, vals = codes["rows"][mine], codes["vals"][mine]
    dense = np.zeros(n_seq * n_pos, dtype=np.float32)
    dense[rows] = vals
    dense = dense.reshape(n_seq, n_pos)
    peaks = dense.max(axis=1)
    out = []
    for seq in np.argsort(-peaks, kind="stable")[:n]:
        if peaks[seq] <= 0:
            break
        at = int(dense[seq].argmax())
        lo, hi = max(0, at - radius), min(n_pos, at + radius + 1)
        # codes index positions after <bos>: position p in the codes is token p + 1 of the sequence
        out.append({"sequence": int(seq), "max": float(peaks[seq]),
                    "tokens": _tokens(pieces[seq][lo + 1:hi + 1], dense[seq, lo:hi])})
    return out
