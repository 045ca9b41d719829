"""Several LoRA finetunes in one batched pass: each job's rows of a step go through the model
together, and every adapted linear map adds to each row the LoRA update of that row's own adapter
(a batched matmul over jobs), so that R small finetunes cost one forward and backward of R times
the rows instead of R of them. The shared model's frozen weights are read once per step.

    results = train_and_evaluate(lm, spec, cache, encoded, jobs, held_out, batch_size=8)

Each job is what pipeline/attribution/runs.py would train alone: its adapter starts as peft's
(a fresh one from its init seed, or a saved state), its data order comes from its seed, its loss is
the mean cross-entropy over its own completion tokens, its gradients are clipped at norm 1 on its
own, and AdamW (elementwise, so one optimizer over stacked parameters is one per job) steps it.
Jobs of one pass share the subset size, epochs, batch size and learning rate (so the same number
of steps); the adapters agree with one-at-a-time training up to float rounding
(tests/test_attribution_selection.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def initial_state(lm: Any, spec: Any, init: int | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The adapter a job starts from, as peft makes it (fresh from a seed) or as saved."""
    if isinstance(init, dict):
        return init
    from pipeline.attribution.lora import adapter, adapter_state

    with adapter(lm, spec, seed=init) as model:
        return adapter_state(model)


class Stacked:
    """The jobs' adapters as stacked leaf tensors: A[name] (R, rank, in), B[name] (R, out, rank)."""

    def __init__(self, names: list[str], states: list[dict[str, np.ndarray]], scaling: float) -> None:
        import torch

        self.names, self.scaling, self.A, self.B = names, scaling, {}, {}
        for name in names:
            a_key = self._key(states[0], name, "lora_A")
            b_key = self._key(states[0], name, "lora_B")
            self.A[name] = torch.tensor(np.stack([s[a_key] for s in states]), dtype=torch.float32, requires_grad=True)
            self.B[name] = torch.tensor(np.stack([s[b_key] for s in states]), dtype=torch.float32, requires_grad=True)

    @staticmethod
    def _key(state: dict[str, np.ndarray], name: str, part: str) -> str:
        keys = [k for k in state if k.endswith(f"{name}.{part}.weight")]
        if len(keys) != 1:
            raise ValueError(f"the adapter state has {len(keys)} entries for {name}.{part}")
        return keys[0]

    def parameters(self) -> list[Any]:
        return [*self.A.values(), *self.B.values()]

    def delta(self, name: str, x: Any) -> Any:
        """The LoRA update of rows x (R * b, T, in), row block r by adapter r: (R * b, T, out)."""
        A, B = self.A[name], self.B[name]
        r = A.shape[0]
        flat = x.reshape(r, -1, x.shape[-1])  # (R, b * T, in)
        out = (flat @ A.transpose(1, 2)) @ B.transpose(1, 2)  # (R, b * T, out)
        return (out * self.scaling).reshape(*x.shape[:-1], -1)

    def grad_norms(self) -> Any:
        """Each job's gradient norm over all its parameters: (R,)."""
        import torch

        sq = sum((p.grad.reshape(p.shape[0], -1) ** 2).sum(1) for p in self.parameters() if p.grad is not None)
        return torch.sqrt(sq)

    def state(self, r: int, template: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name in self.names:
            out[self._key(template, name, "lora_A")] = self.A[name][r].detach().numpy().copy()
            out[self._key(template, name, "lora_B")] = self.B[name][r].detach().numpy().copy()
        return out


@contextmanager
def hooked(lm: Any, stacked: Stacked) -> Iterator[None]:
    """The shared model with each target linear map adding its rows' own LoRA update."""
    handles = []
    try:
        for name in stacked.names:
            module = lm.model.get_submodule(name)
            handles.append(module.register_forward_hook(
                lambda mod, args, out, name=name: out + stacked.delta(name, args[0]).to(out.dtype)))
        yield
    finally:
        for h in handles:
            h.remove()


def _steps(n: int, epochs: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Positions into a job's subset, one array per step: the order `trainer.train` uses."""
    rng = np.random.default_rng(seed)
    return [order[i: i + batch_size] for order in (rng.permutation(n) for _ in range(epochs))
            for i in range(0, n, batch_size)]


def train_and_evaluate(lm: Any, spec: Any, cache: Any, encoded: Any, jobs: list[Any], held_out: np.ndarray, *,
                       batch_size: int, eval_batch_size: int) -> list[tuple[list[float], Any]]:
    """Train every job's adapter in one batched pass, then score each on `held_out`: per job
    (losses, trainer.Scores), as runs.finetune_jobs gets them one at a time."""
    import torch

    from pipeline.attribution.forward import completion_logits
    from pipeline.attribution.lora import target_names
    from pipeline.attribution.trainer import Scores

    shape = {(len(j.subset), j.epochs, j.lr) for j in jobs}
    if len(shape) != 1:
        raise ValueError(f"jobs of one batched pass need the same subset size, epochs and lr, not {sorted(shape)}")
    states = [initial_state(lm, spec, j.init) for j in jobs]
    stacked = Stacked(target_names(lm.model, spec), states, spec.alpha / spec.rank)
    params = stacked.parameters()
    opt = torch.optim.AdamW(params, lr=jobs[0].lr, weight_decay=0.0)
    plans = [_steps(len(j.subset), j.epochs, batch_size, j.seed) for j in jobs]
    losses: list[list[float]] = [[] for _ in jobs]
    flags = {n: p.requires_grad for n, p in lm.model.named_parameters()}
    lm.model.requires_grad_(False)
    try:
        with hooked(lm, stacked):
            lm.model.train()
            for step in range(len(plans[0])):
                rows = [int(np.asarray(j.subset)[pos]) for j, plan in zip(jobs, plans, strict=True)
                        for pos in plan[step]]
                logits, targets = completion_logits(lm, cache, encoded, rows)  # (T_all, vocab)
                per_job = _split([encoded.n_completion(i) for i in rows], len(jobs))
                loss_terms = job_losses(logits, targets, per_job)
                for r, loss in enumerate(loss_terms):
                    losses[r].append(round(loss.item(), 5))
                opt.zero_grad(set_to_none=True)
                torch.stack(loss_terms).sum().backward()
                coef = (1.0 / (stacked.grad_norms() + 1e-6)).clamp(max=1.0)  # clip_grad_norm_ at 1, per job
                for p in params:
                    p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
                opt.step()
            lm.model.eval()
            scores = _evaluate(lm, cache, encoded, len(jobs), np.asarray(held_out), eval_batch_size, Scores)
    finally:
        opt.zero_grad(set_to_none=True)
        for n, p in lm.model.named_parameters():
            p.requires_grad_(flags[n])
        lm.model.eval()
    return list(zip(losses, scores, strict=True))


def job_losses(logits: Any, targets: Any, per_job: list[int]) -> list[Any]:
    """Each job's mean cross-entropy over its own block of completion tokens, the value and the
    gradient F.cross_entropy gives on the block alone, bit for bit: log-softmax over all rows at once
    (it is row-wise), the targets' log-probabilities gathered, then nll_loss per block on those
    (T, 1) columns. Slicing the (T, vocab) log-probabilities per job instead made each job's
    backward fill a (T, vocab) zero tensor (a seventh of a finetune's time, at four jobs)."""
    import torch
    import torch.nn.functional as F

    picked = F.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None])  # (T, 1)
    out, at = [], 0
    for n_tokens in per_job:
        out.append(F.nll_loss(picked[at: at + n_tokens], torch.zeros(n_tokens, dtype=torch.long,
                                                                     device=picked.device)))
        at += n_tokens
    return out


def _split(tokens_per_row: list[int], jobs: int) -> list[int]:
    """Completion tokens of each job's block of rows (rows are job-major, equal blocks)."""
    per = len(tokens_per_row) // jobs
    return [sum(tokens_per_row[r * per: (r + 1) * per]) for r in range(jobs)]


def _evaluate(lm: Any, cache: Any, encoded: Any, jobs: int, held_out: np.ndarray, eval_batch_size: int,
              Scores: Any) -> list[Any]:
    """Every job's greedy success and summed completion loss on the held-out items (each item's row
    repeated once per job, job-major), about eval_batch_size rows a pass."""
    import torch

    from pipeline.attribution.forward import completion_logits

    chunk = max(1, eval_batch_size // jobs)
    success: list[list[bool]] = [[] for _ in range(jobs)]
    nll: list[list[float]] = [[] for _ in range(jobs)]
    with torch.no_grad():
        for start in range(0, len(held_out), chunk):
            items = [int(i) for i in held_out[start: start + chunk]]
            logits, targets = completion_logits(lm, cache, encoded, items * jobs)
            right = (logits.argmax(-1) == targets).cpu().numpy()
            token_nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none").cpu().numpy()
            at = 0
            for r in range(jobs):
                for i in items:
                    n = encoded.n_completion(i)
                    success[r].append(bool(right[at: at + n].all()))
                    nll[r].append(float(token_nll[at: at + n].sum()))
                    at += n
    return [Scores(np.array(s, dtype=bool), np.array(v)) for s, v in zip(success, nll, strict=True)]
