"""Step 3: attribution scores of every pool example (base and candidate) to the query set, with
Bergson on CPU at the base adapter (see pipeline/attribution/gradients.py for what is computed).
If Bergson cannot run, this step raises and every claim that rests on it fails: no fallback.

Every reading of the ranking (`readings`: mean or nearest scoring, a projection, with or without
query preconditioning) comes from one gradient pass per projection: Bergson collects the
per-example gradients once and its Scorer scores each reading from them. Which reading the
comparisons report is chosen downstream, on the selection split (pipeline/attribution/readings.py).

Besides the scores, it reports how each reading sorts the pool's variants: the AUROC of the score
for clean against noisy or off-format examples (labels a real data set would not carry); the
estimates are those of the first reading, recomputed from the per-example rows it keeps (`pool`:
every pool example's variant and its score under each reading)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

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


def ranking(values: dict[str, Any], examples: list[dict[str, Any]], overlap: bool,
            reading: str | None = None) -> np.ndarray:
    """Example indices of the selectable pool (candidates; with overlap, the base pool too), best
    score first (ties by index), by `reading` (None: the first reading, `values["scores"]`)."""
    scores = values["scores"] if reading is None else values["reading_scores"][reading]
    index, scores = np.asarray(values["pool_index"]), np.asarray(scores, dtype=float)
    keep = np.array([overlap or examples[i]["split"] == "candidate" for i in index])
    index, scores = index[keep], scores[keep]
    return index[np.lexsort((index, -scores))]


def variant_aurocs(variant: np.ndarray, scores: np.ndarray, **kw: Any) -> dict[str, Any]:
    """AUROC of the score for clean against the other variants, and against each alone."""
    from pipeline import stats

    clean = variant == "clean"
    out = {"clean_auroc": stats.auroc(clean, scores, **kw)}
    for other in ("noisy", "off_format"):
        both = clean | (variant == other)
        out[f"clean_vs_{other}_auroc"] = stats.auroc(clean[both], scores[both], **kw)
    return out


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the per-example rows: the first reading's AUROCs by variant."""
    cfg = Config(**config)
    rows = items["pool"]
    variant = np.array([r["variant"] for r in rows])
    scores = np.array([r["scores"][cfg.readings[0]] for r in rows], dtype=float)
    return variant_aurocs(variant, scores, level=cfg.level, seed=cfg.seed, unit="pool examples")


def point_aurocs(variant: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The same AUROCs as `variant_aurocs`, point values only (for comparing readings)."""
    from sklearn.metrics import roc_auc_score

    clean = variant == "clean"
    out = {"clean_auroc": round(float(roc_auc_score(clean, scores)), 4)}
    for other in ("noisy", "off_format"):
        both = clean | (variant == other)
        out[f"clean_vs_{other}_auroc"] = round(float(roc_auc_score(clean[both], scores[both])), 4)
    return out


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.config import parse_reading
    from pipeline.attribution.estimates import composition
    from pipeline.attribution.gradients import bergson_gradients, cached_lower, reading_scores
    from pipeline.attribution.lora import adapter
    from pipeline.attribution.study import Study, lora_spec

    cfg = Config(**config)
    study, state = Study.from_finetune(ctx, cfg)
    pool, query = study.where("base", "candidate"), study.where("query")
    parsed = {name: parse_reading(name) for name in cfg.readings}
    scores: dict[str, np.ndarray] = {}
    lower = cached_lower(study.encoded, np.concatenate([query, pool]), study.residuals) if cfg.cached_lower else None
    with adapter(study.lm, lora_spec(cfg), state=state) as model:
        for dim in sorted({p for _, p, _ in parsed.values()}):
            with study.timed(f"bergson_p{dim}"):
                q, t = bergson_gradients(study.lm, model, study.encoded.subset(query), study.encoded.subset(pool),
                                         projection_dim=dim, seed=cfg.seed, batch_size=cfg.score_batch_size,
                                         tail=cfg.tail_logits, lower=lower)
            with study.timed("readings"):
                for name, (mode, p, precondition) in parsed.items():
                    if p == dim:
                        scores[name] = reading_scores(q, t, mode, precondition)
            del q, t
    first = cfg.readings[0]
    variant = np.array([study.examples[i]["variant"] for i in pool])
    values: dict[str, Any] = {"pool_index": pool.tolist(), "scores": np.round(scores[first], 7).tolist(),
                              "readings": list(cfg.readings), "first_reading": first,
                              "reading_scores": {n: np.round(s, 7).tolist() for n, s in scores.items()},
                              "n_query": len(query), "n_pool": len(pool),
                              "projection_dim": parsed[first][1]}
    values["mean_score"] = {v: round(float(scores[first][variant == v].mean()), 5)
                            for v in ("clean", "noisy", "off_format") if (variant == v).any()}
    for overlap in (False, True):
        order = ranking(values, study.examples, overlap)
        values[f"top_composition_{'overlap' if overlap else 'candidates'}"] = {
            str(k): composition([study.examples[i] for i in order[:k]]) for k in (32, 64, 128)}
    values["pool_composition"] = composition([study.examples[i] for i in pool])
    ctx.save_items("pool", [
        {"item": study.examples[i]["id"], "split": study.examples[i]["split"], "family": study.examples[i]["family"],
         "variant": study.examples[i]["variant"],
         "scores": {n: round(float(s[j]), 7) for n, s in scores.items()}} for j, i in enumerate(pool)])
    kw = {"level": cfg.level, "seed": cfg.seed, "unit": "pool examples"}
    values["reading_aurocs"] = {n: point_aurocs(variant, s) for n, s in scores.items()}
    values["reading_spearman"] = {n: {m: round(float(spearmanr(s, scores[m]).statistic), 4) for m in scores}
                                  for n, s in scores.items()}
    values["seconds"] = study.seconds
    seconds = sum(v for k, v in study.seconds.items() if k.startswith("bergson_") and k.endswith("_cpu"))
    passes = len({p for _, p, _ in parsed.values()})  # one gradient pass per projection
    values["examples_per_cpu_second"] = round((len(pool) + len(query)) * passes / max(seconds, 1e-9), 3)
    rounded = np.array([round(float(v), 7) for v in scores[first]])  # as the rows keep them
    return Result(estimates=variant_aurocs(variant, rounded, **kw), values=values)
