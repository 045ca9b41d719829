"""Step 3: attribution scores of every pool example (base and candidate) to the query set, with
Bergson on CPU at the base adapter (see pipeline/attribution/gradients.py for what is computed).
If Bergson cannot run, this step raises and every claim that rests on it fails: no fallback.

Besides the scores, it reports how the ranking sorts the pool's variants: the AUROC of the score
for clean against noisy or off-format examples (labels a real data set would not carry)."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig
from pipeline.attribution.config import ScoresConfig as Config

PACKAGES = ("bergson", "peft")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def ranking(values: dict[str, Any], examples: list[dict[str, Any]], overlap: bool) -> np.ndarray:
    """Example indices of the selectable pool (candidates; with overlap, the base pool too), best
    score first (ties by index)."""
    index, scores = np.asarray(values["pool_index"]), np.asarray(values["scores"], dtype=float)
    keep = np.array([overlap or examples[i]["split"] == "candidate" for i in index])
    index, scores = index[keep], scores[keep]
    return index[np.lexsort((index, -scores))]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline import stats
    from pipeline.attribution.estimates import composition
    from pipeline.attribution.gradients import bergson_scores
    from pipeline.attribution.lora import adapter
    from pipeline.attribution.study import Study, lora_spec

    cfg = Config(**config)
    study, state = Study.from_finetune(ctx, cfg)
    pool, query = study.where("base", "candidate"), study.where("query")
    with adapter(study.lm, lora_spec(cfg), state=state) as model, study.timed("bergson"):
        scores = bergson_scores(study.lm, model, study.encoded.subset(query), study.encoded.subset(pool),
                                projection_dim=cfg.projection_dim, seed=cfg.seed, batch_size=cfg.score_batch_size,
                                tail=cfg.tail_logits, progress=ctx.progress)
    variant = np.array([study.examples[i]["variant"] for i in pool])
    values: dict[str, Any] = {"pool_index": pool.tolist(), "scores": np.round(scores, 7).tolist(),
                              "n_query": len(query), "n_pool": len(pool), "projection_dim": cfg.projection_dim}
    values["mean_score"] = {v: round(float(scores[variant == v].mean()), 5) for v in ("clean", "noisy", "off_format")
                            if (variant == v).any()}
    for overlap in (False, True):
        order = ranking(values, study.examples, overlap)
        values[f"top_composition_{'overlap' if overlap else 'candidates'}"] = {
            str(k): composition([study.examples[i] for i in order[:k]]) for k in (32, 64, 128)}
    values["pool_composition"] = composition([study.examples[i] for i in pool])
    seconds = study.seconds["bergson_cpu"]
    values["seconds"] = study.seconds
    values["examples_per_cpu_second"] = round((len(pool) + len(query)) / max(seconds, 1e-9), 3)
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "pool examples"}
    clean = variant == "clean"
    estimates = {"clean_auroc": stats.auroc(clean, scores, **kw)}
    for other in ("noisy", "off_format"):
        both = clean | (variant == other)
        estimates[f"clean_vs_{other}_auroc"] = stats.auroc(clean[both], scores[both], **kw)
    return Result(estimates=estimates, values=values)
