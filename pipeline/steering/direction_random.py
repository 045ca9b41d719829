"""The control for a direction: random directions (DiffMean: one residual direction; ITI: one per
shifted head), added at the strength chosen for the real direction, one draw per seed, on the same
evaluation items. Each is scaled like the real one, by the standard deviation of the training
activations projected onto it (scale: sigma), or given the real direction's norm (scale: norm). Their mean compliance effect carries an item
bootstrap interval; the per-seed effects give the range to read against. A random direction that
leaves fewer than MIN_COMPLETE answers parsed is counted and left out of the mean."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from claims import Result
from pipeline import stats
from pipeline.hneurons.config import SampleConfig, SplitConfig
from pipeline.steering.capture import answer_activations
from pipeline.steering.config import DirectionSweepConfig, TasksConfig, detection
from pipeline.steering.direction_sweep import requires as sweep_requires
from pipeline.steering.neurons import eval_setup
from pipeline.steering.summary import MIN_COMPLETE, matrix


class Config(DirectionSweepConfig):
    seeds: int = Field(8, ge=1)
    externality: bool = False
    scale: Literal["sigma", "norm"] = Field(
        "sigma", description="Scale each random direction by the std of the activations along it (the "
        "real direction's units), or give it the real direction's norm (the same perturbation size).")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    sweep = DirectionSweepConfig(**{k: v for k, v in cfg.model_dump().items() if k in DirectionSweepConfig.model_fields})
    probe = detection(cfg.profile, cfg.seed)
    return {**sweep_requires(sweep.model_dump(mode="json")),
            "labels": ("pipeline.hneurons.sample", probe.upstream(SampleConfig)),
            "split": ("pipeline.hneurons.split", probe.upstream(SplitConfig)),
            "sweep": ("pipeline.steering.direction_sweep", {**cfg.upstream(TasksConfig), "method": cfg.method,
                                                            "n_heads": cfg.n_heads})}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def random_scaled(acts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random unit direction per site, times the std of the activations projected onto it.
    acts: (n_train, sites, dim) -> (sites, dim)."""
    units = rng.normal(size=acts.shape[1:])
    units /= np.linalg.norm(units, axis=-1, keepdims=True)
    sigma = np.einsum("nsd,sd->ns", acts, units).std(axis=0)  # (sites,)
    return units * sigma[:, None]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions import add_direction, shift_heads
    from pipeline.steering.evaluate import score

    cfg = Config(**config)
    lm, items, prompts = eval_setup(cfg, ctx, ("compliance",))
    up = ctx.upstream("directions")
    arrays, meta = up.arrays("directions"), up.result.values
    real_norms = np.linalg.norm(arrays["diffmean"][None] if cfg.method == "diffmean" else arrays["iti"], axis=-1)
    strength = ctx.upstream("sweep").result.values["chosen_strength"]
    rows = {q["id"]: q for q in ctx.upstream("labels").json("labels")}
    train_ids = ctx.upstream("split").result.values["train"]
    acts = answer_activations(lm, rows, train_ids, 16, ctx.checkpoint("train-activations"), ctx.progress)
    if cfg.method == "diffmean":
        sites = acts["resid"][:, [meta["diffmean_layer"]]]  # (n, 1, D)
    else:
        heads = acts["heads"].reshape(len(train_ids), lm.n_layers, lm.n_heads, lm.head_dim)
        sites = np.stack([heads[:, h["layer"], h["head"]] for h in meta["iti_heads"]], axis=1)  # (n, K, hd)
    ckpt = ctx.checkpoint("random-directions")
    if "neutral" not in ckpt:
        ckpt["neutral"] = score(lm, items, prompts, lambda: add_direction(lm, 0, np.zeros(lm.d_model), 0.0),
                                cfg.max_new_tokens, cfg.batch_size)
    neutral = matrix([ckpt["neutral"]], "compliance", "strict")[:, 0]
    columns, norms = [], []
    for s in ctx.progress(range(cfg.seeds), total=cfg.seeds, desc=f"random {cfg.method} directions"):
        vecs = random_scaled(sites, np.random.default_rng([cfg.seed, 2000 + s]))
        if cfg.scale == "norm":
            vecs = vecs / np.linalg.norm(vecs, axis=-1, keepdims=True) * real_norms[:, None]
        norms.append(np.linalg.norm(vecs, axis=-1).tolist())
        if s not in ckpt:
            if cfg.method == "diffmean":
                make = lambda v=vecs[0]: add_direction(lm, meta["diffmean_layer"], v, strength)  # noqa: E731
            else:
                shifts: dict[int, dict[int, Any]] = {}
                for head, v in zip(meta["iti_heads"], vecs, strict=True):
                    shifts.setdefault(head["layer"], {})[head["head"]] = v
                make = lambda sh=shifts: shift_heads(lm, sh, strength)  # noqa: E731
            ckpt[s] = score(lm, items, prompts, make, cfg.max_new_tokens, cfg.batch_size)
        columns.append(matrix([ckpt[s]], "compliance", "strict")[:, 0])
    # per seed, the paired effect on the items parsed both unsteered and steered; a seed whose
    # random direction leaves too few parsed answers is reported, and left out of the mean
    D = np.column_stack(columns) - neutral[:, None]  # (items, seeds), NaN where either failed
    parsed = (~np.isnan(D)).sum(axis=0)
    usable = parsed >= MIN_COMPLETE
    effects = [float(100 * np.nanmean(D[:, k])) if usable[k] else None for k in range(D.shape[1])]
    Du = D[:, usable]
    estimates = {}
    if usable.any():  # else no random direction left answers to compare: no estimate, the claim says so
        estimates["compliance_effect_pp"] = stats.bootstrap_items(
            lambda idx: float(100 * np.mean(np.nanmean(Du[idx], axis=0))), len(items), level=cfg.level,
            seed=cfg.seed, unit="items (paired per seed)")
    kept = [e for e in effects if e is not None]
    return Result(
        estimates=estimates,
        values={"method": f"random {cfg.method} directions", "strength": strength, "seeds": cfg.seeds,
                "seed_effects_pp": effects, "seed_effect_min": min(kept, default=None),
                "seed_effect_max": max(kept, default=None),
                "seeds_left_out": int((~usable).sum()), "seed_parsed_items": parsed.tolist(),
                "seed_attempt_rates": [float(p / len(items)) for p in parsed], "n_items": len(items),
                "max_seed_attempt_rate": float(parsed.max() / len(items)), "scale": cfg.scale,
                "real_direction_norms": real_norms.tolist(), "random_direction_norms": norms},
    )
