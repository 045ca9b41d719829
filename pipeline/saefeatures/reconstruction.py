"""Step 3: how well each layer's dictionary reconstructs the residual stream on held-out text.

Per layer, over every non-<bos> token of the held-out sequences (documents never trained on):

  explained variance  1 - sum ||x - x_hat||^2 / sum ||x - mean||^2  (mean over held-out tokens)
  L0                  latents active per token
  dead fraction       share of latents active on no held-out token
  spliced loss        the model's next-token cross-entropy (nats per token) with the layer's output
                      replaced by its reconstruction at every position after <bos>, minus the
                      loss of the unmodified model, on the first `loss_sequences` sequences
  fraction of loss    (L_zero - L_spliced) / (L_zero - L_clean), as SAEBench reports it: L_zero is
  recovered (flr)     the loss with the layer's output zero-ablated at the same positions, so 1
                      means splicing costs nothing and 0 means it is as bad as erasing the layer

dictionary sae is the trained (or loaded) SAEs; dictionary pca, the control, a rank-k PCA of the
same training activations, k = the SAE's active latents per token. Intervals resample held-out
sequences (tokens of one sequence move together), the same resamples for every layer, so the
across-layer summaries (the smallest explained variance, the largest loss increase) carry
intervals too. The SAEs' held-out codes are kept (sparse) for the feature pages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.saefeatures.config import CorpusConfig, SAEConfig
from pipeline.saefeatures.config import ReconstructionConfig as Config

PACKAGES = ("sae-lens",)
LOGIT_CHUNK = 128  # positions whose full-vocabulary logits are held at once


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"corpus": ("pipeline.saefeatures.corpus", cfg.upstream(CorpusConfig)),
            "saes": ("pipeline.saefeatures.saes", cfg.upstream(SAEConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def token_nll(lm: Any, ids: Any, hidden: Any) -> Any:
    """(B, T-1) negative log-likelihood of each next token, logits computed a chunk at a time."""
    import torch

    head = lm.model.get_output_embeddings()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    flat_h, flat_y = hidden[:, :-1].reshape(-1, hidden.shape[-1]), ids[:, 1:].reshape(-1)
    out = torch.empty(len(flat_y))
    for s in range(0, len(flat_y), LOGIT_CHUNK):
        logits = head(flat_h[s:s + LOGIT_CHUNK]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        out[s:s + LOGIT_CHUNK] = torch.logsumexp(logits, -1) - logits.gather(1, flat_y[s:s + LOGIT_CHUNK, None]).squeeze(1)
    return out.reshape(ids.shape[0], -1)


class ZeroAblation:
    """Stands in for a dictionary whose reconstruction is zero: the lower bound of the loss recovered."""

    def __init__(self, layer: int):
        self.layer = layer

    def encode(self, x: Any) -> Any:
        return x

    def decode(self, x: Any) -> Any:
        import torch

        return torch.zeros_like(x)


def spliced_nll(lm: Any, ids: Any, dictionary: Any | None) -> Any:
    """Per-token loss of the model, with `dictionary`'s reconstruction spliced in after its layer
    (positions after <bos>); None runs the model unmodified."""
    import torch

    def hook(module: Any, args: Any, output: Any) -> Any:
        h = output[0] if isinstance(output, tuple) else output
        x_hat = dictionary.decode(dictionary.encode(h[:, 1:].float())).to(h.dtype)
        h = torch.cat([h[:, :1], x_hat], dim=1)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = lm.layers[dictionary.layer].register_forward_hook(hook) if dictionary is not None else None
    try:
        with torch.inference_mode():
            hidden = lm.model.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).last_hidden_state
            return token_nll(lm, ids, hidden)
    finally:
        if handle is not None:
            handle.remove()


def measure(ctx: Any, cfg: Config, lm: Any, dictionaries: list[Any], heldout: np.ndarray) -> dict[str, Any]:
    """Per sequence and layer: squared error, squared deviation, active latents, which latents fired,
    and (first loss_sequences) the summed loss clean and spliced. Checkpointed per batch."""
    import torch

    from pipeline.saefeatures.residuals import read_layers

    layers = [d.layer for d in dictionaries]
    ckpt = ctx.checkpoint("batches")
    starts = list(range(0, len(heldout), cfg.forward_batch_size))
    mean = {}
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc=f"held-out text, {cfg.dictionary}")):
        if b in ckpt:
            continue
        ids = torch.from_numpy(heldout[start:start + cfg.forward_batch_size].astype(np.int64))
        acts = read_layers(lm, ids, torch.ones_like(ids), layers)
        out: dict[str, np.ndarray] = {}
        for i, d in enumerate(dictionaries):
            x = acts[d.layer][:, 1:]  # (B, T-1, D)
            codes = d.encode(x)
            x_hat = d.decode(codes)
            out[f"sse{i}"] = ((x - x_hat) ** 2).sum(dim=(1, 2)).numpy()
            out[f"sum{i}"], out[f"sumsq{i}"] = x.sum(dim=1).numpy(), (x ** 2).sum(dim=(1, 2)).numpy()
            active = codes != 0
            out[f"nnz{i}"] = active.sum(dim=(1, 2)).numpy()
            out[f"fired{i}"] = active.any(dim=1).numpy()
            if cfg.dictionary == "sae":  # sparse codes for the feature pages
                flat = codes.reshape(-1, codes.shape[-1])
                rows, cols = flat.nonzero(as_tuple=True)
                out[f"code_rows{i}"], out[f"code_cols{i}"] = rows.numpy().astype(np.int32), cols.numpy().astype(np.int32)
                out[f"code_vals{i}"] = flat[rows, cols].numpy().astype(np.float32)
        n_loss = max(0, min(len(ids), cfg.loss_sequences - start))
        if n_loss:
            clean = spliced_nll(lm, ids[:n_loss], None)
            out["nll_clean"] = clean.sum(dim=1).numpy()
            for i, d in enumerate(dictionaries):
                out[f"nll{i}"] = spliced_nll(lm, ids[:n_loss], d).sum(dim=1).numpy()
                out[f"nll_zero{i}"] = spliced_nll(lm, ids[:n_loss], ZeroAblation(d.layer)).sum(dim=1).numpy()
        ckpt[b] = out
    parts = [ckpt[b] for b in range(len(starts))]
    merged: dict[str, Any] = {}
    for key in parts[0]:
        if key.startswith("code_"):
            continue
        merged[key] = np.concatenate([p[key] for p in parts if key in p])
    for i in range(len(dictionaries)):  # sum of squared deviations from the held-out mean
        n_tok = heldout.shape[1] - 1
        mean[i] = merged[f"sum{i}"].sum(axis=0) / (len(heldout) * n_tok)
        merged[f"sst{i}"] = merged[f"sumsq{i}"] - 2 * merged[f"sum{i}"] @ mean[i] + n_tok * (mean[i] ** 2).sum()
    merged["parts"] = parts
    return merged


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """Explained variance, L0, the spliced loss and the loss recovered, per layer and across layers,
    from the per-sequence rows (sums over a sequence's tokens; SST about the held-out mean)."""
    cfg = Config(**config)
    seqs, loss = items["sequences"], items["loss"]
    n, n_loss = len(seqs), len(loss)
    layers = range(sum(1 for k in seqs[0] if k.startswith("sse_")))
    col = {k: np.array([r[k] for r in seqs], dtype=float) for k in seqs[0]}
    lcol = {k: np.array([r[k] for r in loss], dtype=float) for k in loss[0]}
    tokens_per_seq = int(seqs[0]["tokens"])
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "held-out sequences"}

    def ev(i: int, idx: np.ndarray) -> float:
        return float(1.0 - col[f"sse_{i}"][idx].sum() / col[f"sst_{i}"][idx].sum())

    def l0(i: int, idx: np.ndarray) -> float:
        return float(col[f"nnz_{i}"][idx].sum() / (len(idx) * tokens_per_seq))

    def per_token(key: str, i: int, idx: np.ndarray) -> float:
        return float((lcol[f"{key}_{i}"][idx].sum() - lcol["nll_clean"][idx].sum()) / (len(idx) * tokens_per_seq))

    def flr(i: int, idx: np.ndarray) -> float:
        zero, clean = lcol[f"nll_zero_{i}"][idx].sum(), lcol["nll_clean"][idx].sum()
        return float((zero - lcol[f"nll_{i}"][idx].sum()) / (zero - clean))

    out = {}
    for i in layers:
        out[f"ev_{i}"] = stats.bootstrap_items(lambda idx, i=i: ev(i, idx), n, **kw)
        out[f"l0_{i}"] = stats.bootstrap_items(lambda idx, i=i: l0(i, idx), n, **kw)
        out[f"ce_delta_{i}"] = stats.bootstrap_items(lambda idx, i=i: per_token("nll", i, idx), n_loss, **kw)
        out[f"ce_zero_delta_{i}"] = stats.bootstrap_items(lambda idx, i=i: per_token("nll_zero", i, idx), n_loss, **kw)
        out[f"flr_{i}"] = stats.bootstrap_items(lambda idx, i=i: flr(i, idx), n_loss, **kw)
    out["ev_min"] = stats.bootstrap_items(lambda idx: min(ev(i, idx) for i in layers), n, **kw)
    out["ce_delta_max"] = stats.bootstrap_items(lambda idx: max(per_token("nll", i, idx) for i in layers), n_loss, **kw)
    out["flr_min"] = stats.bootstrap_items(lambda idx: min(flr(i, idx) for i in layers), n_loss, **kw)
    out["ce_clean"] = stats.bootstrap_items(
        lambda idx: float(lcol["nll_clean"][idx].sum() / (len(idx) * tokens_per_seq)), n_loss, **kw)
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.models import load
    from pipeline.saefeatures.dictionary import load_pca, load_saes

    cfg = Config(**config)
    lm = load(cfg.profile)
    saes_up = ctx.upstream("saes")
    entries = saes_up.result.values["saes"]
    dictionaries = load_saes(saes_up) if cfg.dictionary == "sae" else load_pca(saes_up, [e["rank"] for e in entries])
    heldout = ctx.upstream("corpus").arrays("tokens")["heldout"]
    m = measure(ctx, cfg, lm, dictionaries, heldout)
    n, n_loss = len(heldout), len(m["nll_clean"])
    tokens_per_seq = heldout.shape[1] - 1
    layers = range(len(dictionaries))
    sequences = [{"seq": s, "tokens": tokens_per_seq,
                  **{f"{k}_{i}": float(m[f"{k}{i}"][s]) for i in layers for k in ("sse", "sst", "nnz")}}
                 for s in range(n)]
    losses = [{"seq": s, "tokens": tokens_per_seq, "nll_clean": float(m["nll_clean"][s]),
               **{f"{k}_{i}": float(m[f"{k}{i}"][s]) for i in layers for k in ("nll", "nll_zero")}}
              for s in range(n_loss)]
    ctx.save_items("sequences", sequences)
    ctx.save_items("loss", losses)
    estimates = recompute({"sequences": sequences, "loss": losses}, config)
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "held-out sequences"}

    def dead(i: int, idx: np.ndarray) -> float:
        return float((~m[f"fired{i}"][idx].any(axis=0)).mean())

    for i in layers:  # which latents fired is a set per sequence: kept in the cache, not in the rows
        estimates[f"dead_{i}"] = stats.bootstrap_items(lambda idx, i=i: dead(i, idx), n, **kw)
    estimates["dead_max"] = stats.bootstrap_items(lambda idx: max(dead(i, idx) for i in layers), n, **kw)
    if cfg.dictionary == "sae":
        save_codes(ctx, m["parts"], dictionaries, heldout.shape)
    per_layer = [{"layer": d.layer, "width": d.width, "ev": estimates[f"ev_{i}"].value, "l0": estimates[f"l0_{i}"].value,
                  "dead": estimates[f"dead_{i}"].value, "ce_delta": estimates[f"ce_delta_{i}"].value,
                  "flr": estimates[f"flr_{i}"].value, "ce_zero_delta": estimates[f"ce_zero_delta_{i}"].value}
                 for i, d in enumerate(dictionaries)]
    return Result(estimates=estimates, values={
        "dictionary": cfg.dictionary, "layers": [d.layer for d in dictionaries], "per_layer": per_layer,
        "widths": [d.width for d in dictionaries], "ranks": [e["rank"] for e in entries],
        "heldout_sequences": n, "heldout_tokens": n * tokens_per_seq, "loss_sequences": n_loss,
        "loss_tokens": n_loss * tokens_per_seq})


def save_codes(ctx: Any, parts: list[dict[str, np.ndarray]], dictionaries: list[Any], shape: tuple[int, int]) -> None:
    """Per layer, the held-out codes as (row, column, value) triples; row = sequence * (T-1) + position - 1."""
    per_batch = [len(p["sse0"]) * (shape[1] - 1) for p in parts]
    offsets = np.concatenate([[0], np.cumsum(per_batch)[:-1]])
    for i, d in enumerate(dictionaries):
        ctx.save_arrays(f"codes_L{d.layer}", rows=np.concatenate([p[f"code_rows{i}"] + o for p, o in zip(parts, offsets,
                                                                                                       strict=True)]),
                        cols=np.concatenate([p[f"code_cols{i}"] for p in parts]),
                        vals=np.concatenate([p[f"code_vals{i}"] for p in parts]), shape=np.array([shape[0], shape[1] - 1,
                                                                                                  d.width]))
