"""The ends the fraction of loss recovered is read between, measured once for every dictionary:
on the first `loss_sequences` held-out sequences, the model's next-token loss unmodified (the
ceiling, L_clean) and with each layer's output ablated at every position after <bos>, at every
layer of the model, two ways:

  zero-ablated  the output replaced by zeros (L_zero; SAEBench's floor)
  mean-ablated  the output replaced by its mean over every non-<bos> position of all held-out
                sequences (L_mean): a floor that keeps what any text puts there, so the fraction
                read against it does not count as "recovered" the loss of erasing the stream's
                average, which zeroing costs (several nats at most layers of the embedded model)

Neither depends on a dictionary, so the layer sweep's reconstruction nodes (its SAEs, their PCA
control and the second width) read them from here instead of each running the same forwards again:
per batch, one unmodified pass (which also yields the residual stream after every layer) and, per
layer and ablation, the layers above it run on the ablated stream (splicing.from_layer), exactly
what a full pass with a hook gives. Checkpointed per batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from claims import Result
from pipeline.saefeatures.config import PROFILES, CorpusConfig


class Config(CorpusConfig):
    loss_sequences: int | None = Field(None, ge=2, description="Held-out sequences the loss is read on.")
    forward_batch_size: int = Field(16, ge=1, description="Sequences per decoder pass (as the reconstruction "
                                    "nodes batch them, so that every number is theirs bit for bit).")

    @model_validator(mode="after")
    def _loss_default(self) -> Config:
        if self.loss_sequences is None:
            object.__setattr__(self, "loss_sequences", PROFILES[self.profile]["loss_sequences"])
        return self


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"corpus": ("pipeline.saefeatures.corpus", Config(**config).upstream(CorpusConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def heldout_means(ctx: Any, lm: Any, heldout: np.ndarray, batch_size: int) -> np.ndarray:
    """(layers, D) mean of the residual stream after each layer over every non-<bos> position of the
    held-out sequences (float64 sums of the float32 stream)."""
    import torch

    from pipeline.saefeatures.residuals import read_layers

    ckpt = ctx.checkpoint("means")
    starts = list(range(0, len(heldout), batch_size))
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc="held-out mean of each layer")):
        if b not in ckpt:
            ids = torch.from_numpy(heldout[start:start + batch_size].astype(np.int64))
            acts = read_layers(lm, ids, torch.ones_like(ids), range(lm.n_layers))
            ckpt[b] = {"sums": np.stack([acts[layer][:, 1:].double().sum(dim=(0, 1)).numpy()
                                         for layer in range(lm.n_layers)])}
    total = sum(ckpt[b]["sums"] for b in range(len(starts)))
    return (total / (len(heldout) * (heldout.shape[1] - 1))).astype(np.float32)


def run(config: dict[str, Any], ctx: Any) -> Result:
    import torch

    from pipeline.models import load
    from pipeline.saefeatures.reconstruction import token_nll
    from pipeline.saefeatures.splicing import from_layer, layer_outputs, replaced

    cfg = Config(**config)
    lm = load(cfg.profile)
    heldout_all = ctx.upstream("corpus").arrays("tokens")["heldout"]
    heldout = heldout_all[: cfg.loss_sequences]
    if len(heldout) < cfg.loss_sequences:
        raise ValueError(f"loss_sequences {cfg.loss_sequences} exceeds the {len(heldout)} held-out sequences")
    means = heldout_means(ctx, lm, heldout_all, cfg.forward_batch_size)
    ckpt = ctx.checkpoint("batches")
    starts = list(range(0, len(heldout), cfg.forward_batch_size))
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc="loss clean, zero- and mean-ablated")):
        if b in ckpt:
            continue
        ids = torch.from_numpy(heldout[start:start + cfg.forward_batch_size].astype(np.int64))
        with torch.inference_mode():
            hidden, acts = layer_outputs(lm, ids)
            zero, mean = [], []
            for layer in range(lm.n_layers):
                h = acts[layer]
                for out, fill in ((zero, torch.zeros(h.shape[-1])), (mean, torch.from_numpy(means[layer]))):
                    out.append(token_nll(lm, ids, from_layer(lm, replaced(h, fill), layer)).sum(dim=1).numpy())
            ckpt[b] = {"clean": token_nll(lm, ids, hidden).sum(dim=1).numpy(), "zero": np.stack(zero, axis=1),
                       "mean": np.stack(mean, axis=1)}
    loss = {k: np.concatenate([ckpt[b][k] for b in range(len(starts))]) for k in ("clean", "zero", "mean")}
    ctx.save_arrays("loss", **loss)
    ctx.save_arrays("means", means=means)
    per_token = len(heldout) * (heldout.shape[1] - 1)
    return Result(values={"loss_sequences": len(heldout), "tokens_per_sequence": heldout.shape[1] - 1,
                          "n_layers": lm.n_layers, "mean_over_sequences": len(heldout_all),
                          "ce_clean": float(loss["clean"].sum() / per_token),
                          "ce_zero": [float(z) for z in loss["zero"].sum(axis=0) / per_token],
                          "ce_mean": [float(z) for z in loss["mean"].sum(axis=0) / per_token]})
