"""Finetunes of the selection comparisons: each job trains one adapter on a subset of examples and
scores it on held-out items, checkpointed one job at a time (an interrupted node resumes).

    jobs = [Job("0", subset, seed=0, lr=1e-3, epochs=2, init=0)]      # a fresh adapter (init seed 0)
    rows = finetune_jobs(study, spec, jobs, held_out, ckpt, batch_size=8, eval_batch_size=32)

A job starts from a fresh adapter (`init` an int: its initialisation seed; LoRA's B is zero, so it
starts as the shipped model) or from a saved adapter state (`init` a dict of arrays). With
`parallel` > 1, up to that many jobs train together in one batched pass (pipeline/attribution/
batched.py: each batch row carries its own adapter), which gives the same adapters as one at a
time up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Job:
    key: str
    subset: np.ndarray  # example indices it trains on
    seed: int  # data order
    lr: float
    epochs: int
    init: int | dict[str, np.ndarray]  # a fresh adapter's seed, or a saved adapter's state
    meta: dict[str, Any] = field(default_factory=dict)  # copied into its checkpoint row


def _row(study: Any, job: Job, losses: list[float], scores: Any, seconds: dict[str, float]) -> dict[str, Any]:
    from pipeline.attribution.estimates import composition

    rows = [study.examples[i] for i in job.subset]
    return {**job.meta, "ids": [r["id"] for r in rows], "n_train": len(rows), "steps": len(losses),
            "final_loss": losses[-1], "composition": composition(rows),
            "success": scores.success.astype(int).tolist(), "nll": round(float(scores.nll.mean()), 4),
            "seconds": seconds}


def finetune_jobs(study: Any, spec: Any, jobs: list[Job], held_out: np.ndarray, ckpt: Any, *, batch_size: int,
                  eval_batch_size: int, parallel: int = 1, progress: Any = None, desc: str = "finetunes"
                  ) -> list[dict[str, Any]]:
    """Train and score every job not yet in `ckpt` (a mapping: key -> row); returns the rows in job order."""
    from pipeline.attribution.lora import adapter
    from pipeline.attribution.trainer import Schedule, evaluate, train

    todo = [j for j in jobs if j.key not in ckpt]
    groups = [todo[i: i + parallel] for i in range(0, len(todo), parallel)] if parallel > 1 else [[j] for j in todo]
    for group in (progress(groups, desc=desc) if progress else groups):
        if len(group) > 1:
            from pipeline.attribution.batched import train_and_evaluate

            study.seconds.clear()
            with study.timed("finetune_and_evaluate"):
                results = train_and_evaluate(study.lm, spec, study.residuals, study.encoded, group, held_out,
                                             batch_size=batch_size, eval_batch_size=eval_batch_size)
            share = {k: round(v / len(group), 2) for k, v in study.seconds.items()}
            for job, (losses, scores) in zip(group, results, strict=True):
                ckpt[job.key] = _row(study, job, losses, scores, {**share, "batched": len(group)})
            continue
        job = group[0]
        study.seconds.clear()
        state, seed = (job.init, 0) if isinstance(job.init, dict) else (None, job.init)
        with adapter(study.lm, spec, state=state, seed=seed) as model:
            with study.timed("finetune"):
                losses = train(study.lm, model, study.residuals, study.encoded, job.subset,
                               Schedule(job.lr, job.epochs, batch_size, job.seed))
            with study.timed("evaluate"):
                scores = evaluate(study.lm, study.residuals, study.encoded, held_out, eval_batch_size)
        ckpt[job.key] = _row(study, job, losses, scores, dict(study.seconds))
    return [ckpt[j.key] for j in jobs]
