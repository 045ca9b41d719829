"""Finetuning an adapter on completions, and scoring the game's success on the evaluation set.

Loss: cross-entropy on the completion tokens only (the prompt is context), averaged over the
completion tokens of a batch. AdamW at a constant learning rate, gradients clipped at norm 1.
Order: a permutation per epoch from `seed`.

Success: greedy decoding writes the gold answer and then a newline. It is read in one
teacher-forced pass: greedy decoding reproduces the completion's tokens exactly when, at every
completion position, the argmax of the logits is the completion's next token. (A greedy output
that spells the same string with other tokens counts as a failure; such splits are rare for the
answers here, and the criterion is the same for every arm.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.attribution.encoding import Encoded
from pipeline.attribution.forward import Residuals, completion_logits


@dataclass(frozen=True)
class Schedule:
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 8
    seed: int = 0


def train(lm: Any, peft_model: Any, cache: Residuals, encoded: Encoded, indices: list[int] | np.ndarray,
          schedule: Schedule, progress: Any = None) -> list[float]:
    """Train the adapter in `peft_model` on the examples `indices`; returns the loss of every step."""
    import torch
    import torch.nn.functional as F

    from pipeline.attribution.lora import lora_parameters

    params = lora_parameters(peft_model)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=0.0)
    rng = np.random.default_rng(schedule.seed)
    indices = np.asarray(indices)
    steps = [indices[order[i: i + schedule.batch_size]].tolist()
             for order in (rng.permutation(len(indices)) for _ in range(schedule.epochs))
             for i in range(0, len(indices), schedule.batch_size)]
    losses = []
    peft_model.train()
    try:
        for batch in (progress(steps, desc="finetune") if progress else steps):
            logits, targets = completion_logits(lm, cache, encoded, batch)
            loss = F.cross_entropy(logits.float(), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(round(loss.item(), 5))
    finally:
        opt.zero_grad(set_to_none=True)
        peft_model.eval()
    return losses


@dataclass
class Scores:
    """Per example: greedy success (bool) and the summed negative log-likelihood of the completion."""

    success: np.ndarray
    nll: np.ndarray


def evaluate(lm: Any, cache: Residuals, encoded: Encoded, indices: list[int] | np.ndarray,
             batch_size: int = 32) -> Scores:
    import torch

    indices = list(indices)
    success, nll = [], []
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            batch = indices[start: start + batch_size]
            logits, targets = completion_logits(lm, cache, encoded, batch)
            right = (logits.argmax(-1) == targets).cpu().numpy()
            token_nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none").cpu().numpy()
            at = 0
            for i in batch:
                n = encoded.n_completion(i)
                success.append(bool(right[at: at + n].all()))
                nll.append(float(token_nll[at: at + n].sum()))
                at += n
    return Scores(np.array(success, dtype=bool), np.array(nll))
