"""Step 2: one SAE per configured layer, on the residual stream after that layer.

tiny, embedded  the training sequences run through the model once, in batches, every configured
                layer read from the same decoder pass (residuals.read_layers; <bos> positions left
                out: their activations are outliers no text shares); then one TopK SAE per layer
                is trained with sae-lens (training.py) and saved with sae-lens
paper           Gemma Scope 2 SAEs loaded by release id (`SAE.from_pretrained`), saved the same way

Every profile also keeps, per layer, the mean and principal directions of the training activations:
the rank-k PCA the reconstruction control uses. Resumable: the activations are checkpointed per
batch, and each trained SAE as soon as it is done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.saefeatures.config import PAPER_RELEASE, CorpusConfig, paper_sae_id
from pipeline.saefeatures.config import SAEConfig as Config

PACKAGES = ("sae-lens",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"corpus": ("pipeline.saefeatures.corpus", Config(**config).upstream(CorpusConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    cfg = Config(**config)
    out: dict[str, Any] = {"model": fingerprint(cfg.profile)}
    if cfg.profile == "paper":
        out["saes"] = {"release": PAPER_RELEASE, "ids": [paper_sae_id(layer) for layer in cfg.layers]}
    return out


def collect(ctx: Any, lm: Any, tokens: np.ndarray, layers: tuple[int, ...], batch_size: int) -> dict[int, np.ndarray]:
    """{layer: (n_tokens, D) float32} over every non-<bos> position, one decoder pass per batch."""
    import torch

    from pipeline.saefeatures.residuals import read_layers

    ckpt = ctx.checkpoint("activations")
    starts = range(0, len(tokens), batch_size)
    for b, start in enumerate(ctx.progress(starts, total=len(starts), desc="residual stream of the corpus")):
        if b not in ckpt:
            ids = torch.from_numpy(tokens[start:start + batch_size].astype(np.int64))
            acts = read_layers(lm, ids, torch.ones_like(ids), layers)
            ckpt[b] = {f"L{layer}": acts[layer][:, 1:].reshape(-1, acts[layer].shape[-1]).numpy() for layer in layers}
    return {layer: np.concatenate([ckpt[b][f"L{layer}"] for b in range(len(starts))]) for layer in layers}


def principal(acts: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and principal directions (rows, by decreasing variance) of (N, D) activations."""
    mean = acts.mean(axis=0)
    centered = (acts - mean).astype(np.float64)
    eigvals, eigvecs = np.linalg.eigh(centered.T @ centered / len(acts))
    order = np.argsort(eigvals)[::-1]
    return {"mean": mean.astype(np.float32), "components": eigvecs[:, order].T.astype(np.float32),
            "variance": eigvals[order].astype(np.float32)}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.models import load
    from pipeline.saefeatures.dictionary import load_sae, pretrained, save_sae
    from pipeline.saefeatures.training import Recipe, quiet_sae_lens, train

    cfg = Config(**config)
    lm = load(cfg.profile)
    bad = [layer for layer in cfg.layers if not 0 <= layer < lm.n_layers]
    if bad:
        raise ValueError(f"layers {bad} do not exist in {lm.model_id} ({lm.n_layers} layers)")
    tokens = ctx.upstream("corpus").arrays("tokens")["train"]
    acts = collect(ctx, lm, tokens, cfg.layers, cfg.forward_batch_size)
    trained = ctx.checkpoint("saes")
    entries = []
    for layer in ctx.progress(cfg.layers, total=len(cfg.layers), desc="SAEs, one per layer"):
        pca = principal(acts[layer])
        if cfg.profile == "paper":
            from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

            sae_id = paper_sae_id(layer)
            sae = pretrained(PAPER_RELEASE, sae_id)
            rank = round(get_pretrained_saes_directory()[PAPER_RELEASE].expected_l0.get(sae_id) or 64)
            stats: dict[str, Any] = {"release": PAPER_RELEASE, "sae_id": sae_id}
        else:
            if f"{layer}-stats" not in trained:
                recipe = Recipe(d_sae=cfg.d_sae, k=cfg.k, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                seed=cfg.seed + layer)
                with quiet_sae_lens():
                    sae, stats = train(acts[layer], recipe, hook_name=f"blocks.{layer}.hook_resid_post",
                                       model_name=lm.model_id)
                trained[f"{layer}-sae"] = save_sae(sae)
                trained[f"{layer}-stats"] = stats  # written last: its presence means the SAE is complete
            sae, stats, rank = load_sae(trained[f"{layer}-sae"]), trained[f"{layer}-stats"], cfg.k
        ctx.save_arrays(f"sae_L{layer}", **save_sae(sae))
        ctx.save_arrays(f"pca_L{layer}", **pca)
        entries.append({"layer": layer, "file": f"sae_L{layer}", "pca": f"pca_L{layer}", "d_sae": int(sae.cfg.d_sae),
                        "architecture": sae.cfg.architecture(), "rank": int(rank),
                        "neuronpedia_id": getattr(sae.cfg.metadata, "neuronpedia_id", None), "training": stats,
                        "pca_variance_at_rank": float(pca["variance"][:rank].sum() / pca["variance"].sum())})
    return Result(values={"saes": entries, "layers": list(cfg.layers), "d_model": lm.d_model,
                          "n_layers_model": lm.n_layers, "train_tokens": int(len(next(iter(acts.values())))),
                          "model_id": lm.model_id})
