"""Gradient attribution of training examples to a query set, with Bergson on CPU, in process.

    scores = bergson_scores(lm, peft_model, query, train, projection_dim=16, seed=0)

Bergson hooks the adapter's LoRA modules, takes per-example gradients of the summed completion
loss (token ids and -100 labels passed directly: no chat template), projects each module's
gradient to projection_dim x projection_dim with a seeded random projection, unit-normalises the
query gradients, averages them and normalises the mean, and scores every training example by
the inner product of its unit-normalised gradient with that mean (a cosine).

`tail` (the default) hands Bergson the model behind a thin wrapper that computes logits only for
the last positions of each row and zero logits elsewhere. Batches are built from examples of
equal length (no padding), so every supervised position lies in that tail and the loss, its
gradients and the scores are those of the plain model; only the 262,144-row unembedding of the
prompt positions, whose labels are -100, is skipped (tests/test_attribution.py checks equality).

Bergson failing is an error that names the cause: there is no fallback scorer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from claims.errors import ExperimentError
from pipeline.attribution.encoding import Encoded


class BergsonError(ExperimentError):
    """Bergson could not run: the attribution (and every claim on it) fails, with this message."""


def length_batches(encoded: Encoded, batch_size: int) -> list[list[int]]:
    """Batches of examples of the same token length, in index order within each length."""
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded.ids):
        by_length.setdefault(len(ids), []).append(i)
    return [group[i: i + batch_size] for _, group in sorted(by_length.items())
            for i in range(0, len(group), batch_size)]


def tail_model(model: Any, tail: int, lower: tuple[int, dict[tuple[int, ...], np.ndarray]] | None = None) -> Any:
    """`model` (a causal LM, or a peft model around one) whose forward(input_ids) computes logits for
    the last `tail` positions only, earlier positions getting zero logits (constant, no gradient).
    The unembedding runs on a contiguous (rows, d_model) matrix: a strided 3-D slice sends torch to
    a batched-matmul path several times slower. Exposes .device and .dtype as Bergson reads them.

    With `lower` = (start, {token ids: residual stream entering layer start}), the layers below
    `start` (which carry no adapter, so no gradient Bergson reads) are not run: each row's cached
    residual stream enters layer `start` directly, as the finetunes do (forward.Residuals)."""
    import torch

    from pipeline.attribution.forward import layers_skipped

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = causal_lm.get_decoder(), causal_lm.get_output_embeddings()
    cap = getattr(causal_lm.config.get_text_config(), "final_logit_softcapping", None)

    class TailLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        @property
        def device(self) -> Any:
            return next(self.inner.parameters()).device

        @property
        def dtype(self) -> Any:
            return next(self.inner.parameters()).dtype

        def forward(self, input_ids: Any) -> Any:
            from transformers.modeling_outputs import CausalLMOutput

            if lower is None:
                hidden = body(input_ids=input_ids).last_hidden_state  # (n, s, d), final norm applied
            else:
                start, rows = lower
                cached = torch.from_numpy(np.stack([rows[tuple(r)] for r in input_ids.tolist()]))
                with layers_skipped(body, start):
                    hidden = body(inputs_embeds=cached.to(input_ids.device, self.dtype)).last_hidden_state
            n, s, d = hidden.shape
            keep = min(tail, s)
            logits = head(hidden[:, s - keep:].reshape(n * keep, d)).view(n, keep, -1)
            if cap is not None:
                logits = torch.tanh(logits / cap) * cap
            if s > keep:
                logits = torch.cat([logits.new_zeros(n, s - keep, logits.shape[-1]), logits], dim=1)
            return CausalLMOutput(logits=logits)

    return TailLogits()


def cached_lower(encoded: Encoded, indices: Any, cache: Any) -> tuple[int, dict[tuple[int, ...], np.ndarray]]:
    """`lower` for tail_model from a forward.Residuals cache: example `indices` of the study's
    encoding, keyed by their token ids (Bergson hands the model token ids only)."""
    return cache.start, {encoded.ids[i]: cache.example(i) for i in indices}


def _check_tail(encoded: Encoded, tail: int) -> None:
    worst = max(encoded.n_completion(i) for i in range(len(encoded)))
    if worst + 1 > tail:
        raise ValueError(f"a completion of {worst} tokens needs a logit tail of {worst + 1}, not {tail}")


def _bergson() -> Any:
    """Bergson's in-process pieces, or a BergsonError that names why they cannot be imported."""
    try:
        import bergson
        from bergson.process_grads import normalize_and_aggregate_grads
        from bergson.score.score_writer import InMemorySequenceScoreWriter
        from bergson.utils.worker_utils import extract_peft_target_modules
    except Exception as exc:  # an import error is the commonest way Bergson cannot run
        raise BergsonError(f"Bergson cannot be imported ({type(exc).__name__}: {exc}); the attribution has no "
                           "fallback: install it with `make setup` (pip install --no-deps bergson==2.5.1)") from None
    return bergson, normalize_and_aggregate_grads, InMemorySequenceScoreWriter, extract_peft_target_modules


def _collector(peft_model: Any, query: Encoded, train: Encoded, *, projection_dim: int, seed: int, batch_size: int,
               tail: bool, lower: Any = None) -> Any:
    """collect(encoded, folder, scorer=None) -> Bergson's InMemoryCollector after one pass over `encoded`."""
    bergson, _, _, extract_peft_target_modules = _bergson()
    n_tail = max(max(e.n_completion(i) for i in range(len(e))) for e in (query, train)) + 1
    for e in (query, train):
        _check_tail(e, n_tail)
    if lower is not None and not tail:
        raise ValueError("cached lower layers need the tail model (tail=True)")
    model = tail_model(peft_model, n_tail, lower) if tail else peft_model
    processor = bergson.GradientProcessor(projection_dim=projection_dim or None, projection_seed=seed)
    targets = extract_peft_target_modules(peft_model)

    def collect(encoded: Encoded, folder: Path, scorer: Any = None) -> Any:
        cfg = bergson.IndexConfig(run_path=str(folder), projection_dim=projection_dim, projection_seed=seed)
        Path(cfg.partial_run_path).mkdir(parents=True, exist_ok=True)
        data = encoded.dataset()
        collector = bergson.InMemoryCollector(model=peft_model.base_model, data=data, cfg=cfg, processor=processor,
                                              target_modules=targets, preprocess_cfg=bergson.PreprocessConfig(),
                                              scorer=scorer)
        computer = bergson.CollectorComputer(model, data, collector=collector, cfg=cfg,
                                             batches=length_batches(encoded, batch_size))
        computer.run_with_collector_hooks(desc=f"bergson {folder.name}")
        return collector

    return collect


def bergson_scores(lm: Any, peft_model: Any, query: Encoded, train: Encoded, *, projection_dim: int, seed: int,
                   batch_size: int = 8, tail: bool = True, progress: Any = None) -> np.ndarray:
    """Cosine of each training example's (projected) gradient with the normalised mean of the unit
    query gradients: (len(train),), scored by Bergson as the gradients stream in (nothing kept).
    Raises BergsonError if Bergson cannot run."""
    import torch

    bergson, normalize_and_aggregate_grads, InMemorySequenceScoreWriter, _ = _bergson()
    device = next(peft_model.parameters()).device
    collect = _collector(peft_model, query, train, projection_dim=projection_dim, seed=seed,
                         batch_size=batch_size, tail=tail)
    try:
        with tempfile.TemporaryDirectory(prefix="bergson-") as tmp:
            query_grads = collect(query, Path(tmp) / "query").gradients
            modules = sorted(query_grads)
            mean = normalize_and_aggregate_grads(query_grads, modules, unit_normalize=True, device=device,
                                                 aggregate_grads="mean", normalize_aggregated_grad=True)
            writer = InMemorySequenceScoreWriter(len(train), 1)
            scorer = bergson.Scorer(mean, modules, writer, device, torch.float32, unit_normalize=True)
            scores = collect(train, Path(tmp) / "train", scorer).scores
    except BergsonError:
        raise
    except Exception as exc:
        raise BergsonError(f"Bergson failed while scoring ({type(exc).__name__}: {exc}); the attribution has no "
                           "fallback") from None
    return _finite(np.asarray(scores, dtype=np.float64).reshape(len(train)))


def _finite(out: np.ndarray) -> np.ndarray:
    if not np.isfinite(out).all():
        raise BergsonError(f"Bergson returned {int((~np.isfinite(out)).sum())} non-finite scores")
    return out


def bergson_gradients(lm: Any, peft_model: Any, query: Encoded, train: Encoded, *, projection_dim: int, seed: int,
                      batch_size: int = 8, tail: bool = True, lower: Any = None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bergson's per-example (projected) adapter gradients of the query and training examples, kept
    in memory ({module: (n, dim)} each), so that every reading of the ranking at this projection
    comes from one pass (`reading_scores`). `lower`: see `tail_model` (`cached_lower` builds it)."""
    collect = _collector(peft_model, query, train, projection_dim=projection_dim, seed=seed,
                         batch_size=batch_size, tail=tail, lower=lower)
    try:
        with tempfile.TemporaryDirectory(prefix="bergson-") as tmp:
            query_grads = dict(collect(query, Path(tmp) / "query").gradients)
            train_grads = dict(collect(train, Path(tmp) / "train").gradients)
    except BergsonError:
        raise
    except Exception as exc:
        raise BergsonError(f"Bergson failed while collecting gradients ({type(exc).__name__}: {exc}); the "
                           "attribution has no fallback") from None
    return query_grads, train_grads


def reading_scores(query_grads: dict[str, Any], train_grads: dict[str, Any], mode: str, precondition: str,
                   batch_size: int = 256) -> np.ndarray:
    """One reading of the ranking, scored by Bergson's Scorer on kept gradients: (n_train,).

      mean      cosine with the normalised mean of the unit query gradients (Bergson's `mean`)
      nearest   the largest cosine with any single query gradient (Bergson's `nearest`)
      query     both sides preconditioned by H^-1/2, H the query gradients' second moment per module
                (Bergson's dense preconditioner, damped inverse), as Bergson's split mode does
    """
    import torch

    bergson, normalize_and_aggregate_grads, InMemorySequenceScoreWriter, _ = _bergson()
    from bergson.hessians.inversion import invert_psd_matrix
    from bergson.hessians.preconditioner import DensePreconditioner

    modules = sorted(query_grads)
    device = torch.device("cpu")
    query = {m: query_grads[m].float() for m in modules}
    transform = None
    if precondition == "query":
        h = {m: invert_psd_matrix(query[m].T @ query[m], power=-0.5).float() for m in modules}
        transform = DensePreconditioner(h).apply
        query = transform(query)
    elif precondition != "none":
        raise ValueError(f"unknown preconditioning {precondition!r}")
    if mode not in ("mean", "nearest"):
        raise ValueError(f"unknown score mode {mode!r}")
    query = normalize_and_aggregate_grads(query, modules, unit_normalize=True, device=device,
                                          aggregate_grads="mean" if mode == "mean" else "none",
                                          normalize_aggregated_grad=mode == "mean")
    n = len(train_grads[modules[0]])
    writer = InMemorySequenceScoreWriter(n, 1)
    scorer = bergson.Scorer(query, modules, writer, device, torch.float32, unit_normalize=True,
                            score_mode="nearest" if mode == "nearest" else "individual", index_transform=transform)
    for start in range(0, n, batch_size):
        rows = list(range(start, min(start + batch_size, n)))
        scorer(rows, {m: train_grads[m][rows].float() for m in modules})
    return _finite(writer.scores.numpy().astype(np.float64).reshape(n))


def plain_gradients(lm: Any, peft_model: Any, encoded: Encoded) -> np.ndarray:
    """Reference: one forward and backward per example through the whole model, the adapter's
    gradient of the summed completion loss flattened: (n, n_adapter_params)."""
    import torch
    import torch.nn.functional as F

    from pipeline.attribution.lora import lora_parameters

    params = lora_parameters(peft_model)
    for p in params:
        p.requires_grad_(True)
    rows = []
    for i in range(len(encoded)):
        ids = torch.tensor([encoded.ids[i]], device=lm.device)
        n = encoded.n_prompt[i]
        logits = peft_model(ids).logits[0, n - 1: -1]
        loss = F.cross_entropy(logits.float(), ids[0, n:], reduction="sum")
        grads = torch.autograd.grad(loss, params)
        rows.append(torch.cat([g.flatten() for g in grads]).float().cpu().numpy())
    return np.stack(rows)


def cosine_scores(train_grads: np.ndarray, query_grads: np.ndarray) -> np.ndarray:
    """The same score from plain gradients: cosine with the normalised mean unit query gradient."""
    unit = query_grads / np.linalg.norm(query_grads, axis=1, keepdims=True)
    mean = unit.mean(0)
    mean /= np.linalg.norm(mean)
    return train_grads @ mean / np.linalg.norm(train_grads, axis=1)
