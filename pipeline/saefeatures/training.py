"""Training one TopK SAE with sae-lens on activations held in memory (CPU, wandb off).

The recipe, with the remedies for dead latents that sae-lens offers or that the TopK literature
uses (Gao et al. 2024, sae-lens's TopK trainer):

  activation scale   sae-lens's own estimate (normalize_activations = expected_average_only_in:
                     inputs scaled to mean norm sqrt(d_in)), made before training so that the
                     decoder bias can be set in the scaled space; folded into the weights at the end
  decoder bias       initialised at the mean of the training activations (`b_dec_init="mean"`).
                     The residual stream of Gemma 3 270M is mostly its mean (83-94% of the squared
                     norm at the embedded profile's layers): with b_dec = 0 every token looks alike
                     to the encoder, the same few latents win the top k everywhere and the rest die
  decoder rows       sae-lens's default: unit directions scaled to 0.1, the encoder its transpose
  dead latents       sae-lens's TopK auxiliary loss (AuxK, coefficient 1): a latent that has not
                     fired for `dead_window` steps joins the top-k_aux dead latents that are trained
                     to reconstruct the live latents' residual
  learning rate      Adam, linear warm-up over the first `warmup` share of steps, then cosine
                     annealing to lr / 10; gradient norm clipped at 1 (sae-lens)

The data provider walks the tokens in a fresh seeded permutation each epoch, so a run is a
function of (activations, config, seed): training the same layer twice gives the same weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

NORM_BATCHES = 8  # batches sae-lens reads to estimate the activation scale
DEAD_WINDOW_STEPS = 64  # a latent silent this many steps counts as dead (TopK's auxiliary loss revives it)


@dataclass(frozen=True)
class Recipe:
    d_sae: int
    k: int
    epochs: int
    batch_size: int
    lr: float
    seed: int
    warmup: float = 0.05  # share of the steps over which the learning rate rises linearly
    b_dec_init: Literal["mean", "zeros"] = "mean"
    dead_window: int = DEAD_WINDOW_STEPS

    def steps(self, n_tokens: int) -> int:
        return max(1, self.epochs * n_tokens // self.batch_size)


def batches(acts: np.ndarray, batch_size: int, seed: int) -> Iterator[Any]:
    """Endless (batch_size, D) float32 tensors: epoch after epoch, each in its own permutation."""
    import torch

    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(acts))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield torch.from_numpy(np.ascontiguousarray(acts[order[start:start + batch_size]], dtype=np.float32))
        epoch += 1


@contextlib.contextmanager
def quiet_sae_lens() -> Iterator[None]:
    """sae-lens's own progress bars off (the experiment reports progress per layer instead)."""
    from functools import partial
    from unittest import mock

    from tqdm.auto import tqdm

    with mock.patch("sae_lens.training.sae_trainer.tqdm", partial(tqdm, disable=True)), \
            mock.patch("sae_lens.training.activation_scaler.tqdm", partial(tqdm, disable=True)):
        yield


def train(acts: np.ndarray, recipe: Recipe, hook_name: str = "", model_name: str = "") -> tuple[Any, dict[str, Any]]:
    """A TopK SAE trained on `acts` (N, D); returns the inference SAE and training statistics."""
    import torch
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    if len(acts) < recipe.batch_size:
        raise ValueError(f"{len(acts)} training tokens are fewer than one batch of {recipe.batch_size}")
    steps = recipe.steps(len(acts))
    cfg = TopKTrainingSAEConfig(d_in=int(acts.shape[1]), d_sae=recipe.d_sae, k=recipe.k, dtype="float32", device="cpu",
                                normalize_activations="expected_average_only_in")
    cfg.metadata.hook_name, cfg.metadata.model_name = hook_name, model_name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        sae = TopKTrainingSAE(cfg)
        data = batches(acts, recipe.batch_size, recipe.seed)
        trainer = SAETrainer(
            cfg=SAETrainerConfig(
                total_training_samples=steps * recipe.batch_size, train_batch_size_samples=recipe.batch_size,
                lr=recipe.lr, lr_end=recipe.lr / 10, lr_scheduler_name="cosineannealing",
                lr_warm_up_steps=max(1, round(recipe.warmup * steps)), dead_feature_window=recipe.dead_window,
                feature_sampling_window=steps + 1, n_batches_for_norm_estimate=NORM_BATCHES,
                logger=LoggingConfig(log_to_wandb=False)),
            sae=sae, data_provider=data)
        # the scale first (fit() then keeps it), so that the decoder bias starts at the scaled mean
        trainer.activation_scaler.estimate_scaling_factor(cfg.d_in, data, NORM_BATCHES)
        scale = float(trainer.activation_scaler.scaling_factor)
        if recipe.b_dec_init == "mean":
            with torch.no_grad():
                sae.b_dec.copy_(torch.from_numpy(acts.mean(axis=0, dtype=np.float64) * scale).float())
        trainer.fit()
    stats = {"steps": steps, "samples": steps * recipe.batch_size, "tokens": int(len(acts)),
             "warmup_steps": max(1, round(recipe.warmup * steps)), "b_dec_init": recipe.b_dec_init,
             "activation_scale": scale, "dead_in_training": int(trainer.dead_neurons.sum()),
             "l0_in_training": float(trainer.feature_sparsity.sum()) if trainer.n_frac_active_samples else None}
    return _inference(sae), stats


def _inference(sae: Any) -> Any:
    """The inference SAE sae-lens would save for this training SAE (weights as sae-lens folds them)."""
    import tempfile

    from sae_lens import SAE

    with tempfile.TemporaryDirectory() as tmp:
        sae.save_inference_model(tmp)
        return SAE.load_from_disk(tmp, device="cpu").eval()
