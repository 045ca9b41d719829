"""The layer sweep's reconstruction: what reconstruction.py measures (explained variance, L0, dead
latents, spliced loss, fraction of loss recovered; the SAEs' held-out codes), read more cheaply and
against a second floor.

  - The loss clean and ablated come from the floor node (floor.py), measured once for every
    dictionary at the same corpus and loss_sequences, instead of 1 + 2 x layers full passes in
    each node.
  - Each splice runs only the layers above its own (splicing.from_layer) on the residual stream the
    explained variance already read: the same operations on the same batches as a full pass with a
    hook (tests/test_saefeatures.py), so reconstruction.py's numbers at the same inputs.
  - Besides the fraction against zero-ablation (flr_<i>, SAEBench's), the fraction against
    mean-ablation (flr_mean_<i> = (L_mean - L_spliced) / (L_mean - L_clean)), whose floor keeps the
    stream's average: a splice that recovers less than the mean does comes out negative.

reconstruction.py stays as it is for the four-layer study, whose results it made, until that study
is rerun; then it moves onto this design and the two fold into one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.saefeatures.config import CorpusConfig, SAEConfig
from pipeline.saefeatures.config import ReconstructionConfig as Config
from pipeline.saefeatures.reconstruction import recompute as recompute_zero
from pipeline.saefeatures.reconstruction import save_codes, token_nll

PACKAGES = ("sae-lens",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    floor = {**cfg.upstream(CorpusConfig), "loss_sequences": cfg.loss_sequences,
             "forward_batch_size": cfg.forward_batch_size}
    return {"corpus": ("pipeline.saefeatures.corpus", cfg.upstream(CorpusConfig)),
            "saes": ("pipeline.saefeatures.saes", cfg.upstream(SAEConfig)),
            "floor": ("pipeline.saefeatures.floor", floor)}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def measure(ctx: Any, cfg: Config, lm: Any, dictionaries: list[Any], heldout: np.ndarray) -> dict[str, Any]:
    """Per sequence and layer: squared error, squared deviation, active latents, which latents fired,
    and (first loss_sequences) the summed loss spliced; the loss clean and ablated from the floor
    node. Checkpointed per batch."""
    import torch

    from pipeline.saefeatures.residuals import read_layers
    from pipeline.saefeatures.splicing import from_layer, spliced

    layers = [d.layer for d in dictionaries]
    ckpt = ctx.checkpoint("batches")
    starts = list(range(0, len(heldout), cfg.forward_batch_size))
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc=f"held-out text, {cfg.dictionary}")):
        if b in ckpt:
            continue
        ids = torch.from_numpy(heldout[start:start + cfg.forward_batch_size].astype(np.int64))
        acts = read_layers(lm, ids, torch.ones_like(ids), layers)
        out: dict[str, np.ndarray] = {}
        with torch.inference_mode():
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
                    out[f"code_rows{i}"] = rows.numpy().astype(np.int32)
                    out[f"code_cols{i}"] = cols.numpy().astype(np.int32)
                    out[f"code_vals{i}"] = flat[rows, cols].numpy().astype(np.float32)
            n_loss = max(0, min(len(ids), cfg.loss_sequences - start))
            if n_loss:  # each splice runs only the layers above its own, on a stream of the same batch
                sub = ids[:n_loss]
                loss_acts = acts if n_loss == len(ids) else read_layers(lm, sub, torch.ones_like(sub), layers)
                for i, d in enumerate(dictionaries):
                    last = from_layer(lm, spliced(d, loss_acts[d.layer]), d.layer)
                    out[f"nll{i}"] = token_nll(lm, sub, last).sum(dim=1).numpy()
        ckpt[b] = out
    parts = [ckpt[b] for b in range(len(starts))]
    merged: dict[str, Any] = {key: np.concatenate([p[key] for p in parts if key in p])
                              for key in parts[0] if not key.startswith("code_")}
    floor = ctx.upstream("floor").arrays("loss")  # the loss clean and ablated, measured once (floor.py)
    merged["nll_clean"] = floor["clean"][: cfg.loss_sequences]
    for i, d in enumerate(dictionaries):
        merged[f"nll_zero{i}"] = floor["zero"][: cfg.loss_sequences, d.layer]
        merged[f"nll_mean{i}"] = floor["mean"][: cfg.loss_sequences, d.layer]
    n_tok = heldout.shape[1] - 1
    for i in range(len(dictionaries)):  # sum of squared deviations from the held-out mean
        mean = merged[f"sum{i}"].sum(axis=0) / (len(heldout) * n_tok)
        merged[f"sst{i}"] = merged[f"sumsq{i}"] - 2 * merged[f"sum{i}"] @ mean + n_tok * (mean ** 2).sum()
    merged["parts"] = parts
    return merged


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """reconstruction.py's estimates from the per-sequence rows, and the fraction of loss recovered
    against mean-ablation, per layer and the smallest across layers."""
    cfg = Config(**config)
    out = recompute_zero(items, config)
    loss = items["loss"]
    layers = range(sum(1 for k in items["sequences"][0] if k.startswith("sse_")))
    col = {k: np.array([r[k] for r in loss], dtype=float) for k in loss[0]}
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "held-out sequences"}
    tokens_per_seq = int(loss[0]["tokens"])

    def flr_mean(i: int, idx: np.ndarray) -> float:
        mean, clean = col[f"nll_mean_{i}"][idx].sum(), col["nll_clean"][idx].sum()
        return float((mean - col[f"nll_{i}"][idx].sum()) / (mean - clean))

    for i in layers:
        out[f"flr_mean_{i}"] = stats.bootstrap_items(lambda idx, i=i: flr_mean(i, idx), len(loss), **kw)
        out[f"ce_mean_delta_{i}"] = stats.bootstrap_items(
            lambda idx, i=i: float((col[f"nll_mean_{i}"][idx].sum() - col["nll_clean"][idx].sum())
                                   / (len(idx) * tokens_per_seq)), len(loss), **kw)
    out["flr_mean_min"] = stats.bootstrap_items(lambda idx: min(flr_mean(i, idx) for i in layers), len(loss), **kw)
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
               **{f"{k}_{i}": float(m[f"{k}{i}"][s]) for i in layers for k in ("nll", "nll_zero", "nll_mean")}}
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
    per_layer = [{"layer": d.layer, "width": d.width,
                  **{k: estimates[f"{k}_{i}"].value for k in ("ev", "l0", "dead", "ce_delta", "flr", "ce_zero_delta",
                                                              "flr_mean", "ce_mean_delta")}}
                 for i, d in enumerate(dictionaries)]
    return Result(estimates=estimates, values={
        "dictionary": cfg.dictionary, "layers": [d.layer for d in dictionaries], "per_layer": per_layer,
        "widths": [d.width for d in dictionaries], "ranks": [e["rank"] for e in entries],
        "heldout_sequences": n, "heldout_tokens": n * tokens_per_seq, "loss_sequences": n_loss,
        "loss_tokens": n_loss * tokens_per_seq})
