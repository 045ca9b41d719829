"""Step 2: one SAE per configured layer, on the residual stream after that layer.

tiny, embedded  the training sequences run through the model once, in batches, every configured
                layer read from the same decoder pass (residuals.read_layers; <bos> positions left
                out: their activations are outliers no text shares); then one TopK SAE per layer
                is trained with sae-lens (training.py) and saved with sae-lens
hub, paper      Gemma Scope 2 SAEs loaded by release and sae id (config.PUBLISHED) through sae-lens,
                from the hub (`SAE.from_pretrained`) or a local mirror (`$CLAIMS_SAE_DIR`), one code
                path either way (published.py), saved the same way, with their Neuronpedia ids

Every profile also keeps, per layer, the mean and principal directions of the training activations:
the rank-k PCA the reconstruction control uses. Resumable: the activations are checkpointed per
batch, and each trained SAE as soon as it is done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from claims.provenance import sha256_bytes
from pipeline.saefeatures.config import PUBLISHED, CorpusConfig, published_sae
from pipeline.saefeatures.config import SAEConfig as Config

PACKAGES = ("sae-lens",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"corpus": ("pipeline.saefeatures.corpus", Config(**config).upstream(CorpusConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.saefeatures import published

    cfg = Config(**config)
    out: dict[str, Any] = {"model": fingerprint(cfg.profile)}
    if cfg.profile in PUBLISHED:
        out["saes"] = published.inputs(cfg.profile, cfg.layers, cfg.d_sae)
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
    from pipeline.saefeatures import published
    from pipeline.saefeatures.dictionary import load_sae, save_sae
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
        if cfg.profile in PUBLISHED:
            sae, stats = published.load(*published_sae(cfg.profile, layer, cfg.d_sae), layer=layer, d_model=lm.d_model)
            rank = round(stats["expected_l0"] or 64)  # the PCA control keeps as many dimensions
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
        packed = save_sae(sae)
        if cfg.profile in PUBLISHED:  # which weights these were, whatever their source
            stats["weights_sha256"] = sha256_bytes(packed["sae_weights.safetensors"].tobytes())
        ctx.save_arrays(f"sae_L{layer}", **packed)
        ctx.save_arrays(f"pca_L{layer}", **pca)
        entries.append({"layer": layer, "file": f"sae_L{layer}", "pca": f"pca_L{layer}", "d_sae": int(sae.cfg.d_sae),
                        "architecture": sae.cfg.architecture(), "rank": int(rank),
                        "neuronpedia_id": getattr(sae.cfg.metadata, "neuronpedia_id", None), "training": stats,
                        "pca_variance_at_rank": float(pca["variance"][:rank].sum() / pca["variance"].sum())})
    return Result(values={"saes": entries, "layers": list(cfg.layers), "d_model": lm.d_model,
                          "n_layers_model": lm.n_layers, "train_tokens": int(len(next(iter(acts.values())))),
                          "model_id": lm.model_id})
