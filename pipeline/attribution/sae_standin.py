"""A stand-in SAE until the SAE study's node is merged: a sae-lens TopK SAE trained on the output
residual stream of one block of the profile's model, over the embedded factual questions (text
that is not the word game's), every token but <bos>. It meets the contract of
pipeline/attribution/sae.py, so the fingerprint reads it exactly as it will read the SAE study's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import SAEConfig as Config

PACKAGES = ("sae-lens",)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def texts(max_texts: int | None, seed: int) -> list[str]:
    from pipeline.data import build_embedded

    questions = [it.question for it in build_embedded()]
    if max_texts is not None and max_texts < len(questions):
        keep = np.sort(np.random.default_rng(seed).choice(len(questions), size=max_texts, replace=False))
        questions = [questions[i] for i in keep]
    return questions


def run(config: dict[str, Any], ctx: Any) -> Result:
    import torch
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    from pipeline.attribution.encoding import Encoded
    from pipeline.attribution.sae import residual_tokens, save_sae
    from pipeline.models import load

    cfg = Config(**config)
    cpu = time.process_time()
    lm = load(cfg.profile)
    if not 0 <= cfg.layer < lm.n_layers:
        raise ValueError(f"layer {cfg.layer} does not exist: the model has blocks 0..{lm.n_layers - 1}")
    ids = lm.tokenizer(texts(cfg.max_texts, cfg.seed)).input_ids
    acts = np.concatenate(residual_tokens(lm, Encoded(tuple(map(tuple, ids)), tuple(map(len, ids))), cfg.layer,
                                          progress=ctx.progress))  # (tokens, d_model)
    rng = np.random.default_rng(cfg.seed)

    def batches() -> Any:
        while True:
            yield torch.from_numpy(acts[rng.integers(len(acts), size=cfg.batch_size)])

    # Inputs are rescaled to norm sqrt(d_in) while training (the factor is folded into the weights
    # at the end): Gemma's residual norms are large enough to stall Adam otherwise.
    sae_cfg = TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=cfg.d_sae, k=cfg.k, dtype="float32", device="cpu",
                                    normalize_activations="expected_average_only_in")
    sae_cfg.metadata.hook_name = f"blocks.{cfg.layer}.hook_resid_post"
    sae_cfg.metadata.model_name = lm.model_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        sae = TopKTrainingSAE(sae_cfg)
        trainer_cfg = SAETrainerConfig(total_training_samples=cfg.steps * cfg.batch_size,
                                       train_batch_size_samples=cfg.batch_size, lr=cfg.lr, lr_end=cfg.lr,
                                       device="cpu", logger=LoggingConfig(log_to_wandb=False),
                                       n_batches_for_norm_estimate=20, dead_feature_window=cfg.steps // 4)
        sae = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches()).fit()
    sae.eval()
    with torch.no_grad():
        x = torch.from_numpy(acts[: min(len(acts), 4096)])
        feats = sae.encode(x)
        recon = sae.decode(feats)
        fvu = float(((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    save_sae(ctx, "sae", sae)
    return Result(values={"layer": cfg.layer, "hook_name": sae_cfg.metadata.hook_name, "d_sae": cfg.d_sae,
                          "k": cfg.k, "n_tokens": int(len(acts)), "fraction_of_variance_unexplained": round(fvu, 4),
                          "l0": round(float((feats > 0).float().sum(-1).mean()), 2),
                          "alive_features": int((feats > 0).any(0).sum()),
                          "seconds": {"total_cpu": round(time.process_time() - cpu, 2)}})
