"""Which reading of the ranking the comparisons report, chosen before any of them on held-out data.

Each reading (mean or nearest scoring, a projection, with or without query preconditioning; see
pipeline/attribution/scores.py) ranks the candidate pool; its top `select_k` examples finetune a
fresh adapter on the shipped model (the base finetune's learning rate and epochs, one seed), scored
on the selection split (entities in no other split). The rule, fixed here before any comparison:

    the reading with the highest success on the selection split; ties go to the lower mean
    completion loss there, then to the reading listed first.

Only this node looks at the selection split, and no comparison looks at it. Reported with the
choice: how the chosen reading sorts the pool's variants (AUROC of clean against the rest), the
claim attribution-ranking-variants, beside the same AUROC of three trivial scores (the format
regex, the shipped model's completion loss, token count) and the ranking's paired gain over each.
Per-item rows (every pool example's variant, score and trivial scores; every selection item's
success) are committed, and the estimates are computed from them."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.attribution.config import FinetuneConfig, GameConfig, ScoresConfig
from pipeline.attribution.config import ReadingsConfig as Config

PACKAGES = ("bergson", "peft")
RULE = ("highest success on the selection split; ties: lower mean completion loss there, then the reading "
        "listed first")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"pool": ("pipeline.attribution.pool", cfg.upstream(GameConfig)),
            "finetune": ("pipeline.attribution.finetune", cfg.upstream(FinetuneConfig)),
            "scores": ("pipeline.attribution.scores", cfg.upstream(ScoresConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def choose(rows: dict[str, dict[str, float]], readings: tuple[str, ...] | list[str]) -> str:
    """The rule: highest selection success, then lowest mean loss, then the first listed."""
    return min(readings, key=lambda r: (-rows[r]["success"], rows[r]["nll"], list(readings).index(r)))


def chosen(ctx: Any, reading: str) -> str:
    """The reading a selection node uses: its own `reading`, or the readings node's choice."""
    return ctx.upstream("readings").result.values["chosen"] if reading == "chosen" else reading


def baseline_aurocs(variant: np.ndarray, scores: np.ndarray, baselines: dict[str, np.ndarray],
                    **kw: Any) -> dict[str, Any]:
    """Each trivial score's AUROC of clean against the other variants, and the ranking's paired AUROC
    gain over it on the same pool examples (what the ranking sees beyond a format regex, the
    shipped model's loss, or length)."""
    from pipeline import stats

    clean = variant == "clean"
    out = {}
    for name, base in baselines.items():
        out[f"{name}_clean_auroc"] = stats.auroc(clean, base, **kw)
        out[f"gain_over_{name}"] = stats.auroc_difference(clean, scores, base, **kw)
    return out


def trivial_scores(examples: list[dict[str, Any]], pool: np.ndarray, lengths: np.ndarray,
                   loss: np.ndarray) -> dict[str, np.ndarray]:
    """Trivial scores of the pool examples, higher meaning clean: the format regex the `format` filter
    uses (1 or 0), the shipped model's completion loss (negated), and token count in whichever
    direction separates clean from the rest better on these examples (the baseline's best case)."""
    from sklearn.metrics import roc_auc_score

    from pipeline.attribution.subsets import FORMAT

    clean = np.array([examples[i]["variant"] == "clean" for i in pool])
    length = np.asarray(lengths, dtype=float)[pool]
    sign = 1.0 if roc_auc_score(clean, length) >= 0.5 else -1.0
    return {"format": np.array([float(bool(FORMAT.match(examples[i]["completion"]))) for i in pool]),
            "loss": -np.asarray(loss, dtype=float)[pool], "length": sign * length}


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.attribution.estimates import composition
    from pipeline.attribution.runs import Job, finetune_jobs
    from pipeline.attribution.scores import ranking
    from pipeline.attribution.study import Study, lora_spec

    cfg = Config(**config)
    study, _ = Study.from_finetune(ctx, cfg)
    values = ctx.upstream("scores").result.values
    select = study.where("select")
    if not len(select):
        raise ValueError("the pool has no selection split (n_select is 0): the reading cannot be chosen on "
                         "held-out data")
    jobs = []
    for name in cfg.readings:
        top = ranking(values, study.examples, False, name)[: cfg.select_k]
        if len(top) < cfg.select_k:
            raise ValueError(f"select_k = {cfg.select_k} exceeds the {len(top)} candidates")
        jobs.append(Job(name, np.sort(top), cfg.seed, cfg.lr, cfg.epochs, cfg.seed, {"reading": name}))
    rows = finetune_jobs(study, lora_spec(cfg), jobs, select, ctx.checkpoint("readings"), batch_size=cfg.batch_size,
                         eval_batch_size=cfg.eval_batch_size, parallel=cfg.parallel_adapters, progress=ctx.progress, desc="readings")
    by = {r["reading"]: {"success": round(float(np.mean(r["success"])), 4), "nll": r["nll"]} for r in rows}
    pick = choose(by, cfg.readings)
    pool = np.asarray(values["pool_index"])
    variant = np.array([study.examples[i]["variant"] for i in pool])
    picked = next(r["success"] for r in rows if r["reading"] == pick)
    tuned = ctx.upstream("finetune").result.values
    loss = np.full(len(study.examples), np.nan)
    loss[np.asarray(tuned["pool_index"], dtype=int)] = tuned["pool_loss_zero_shot"]
    lengths = np.array([len(ids) for ids in study.encoded.ids])
    chosen_scores = np.asarray(values["reading_scores"][pick], dtype=float)
    trivial = trivial_scores(study.examples, pool, lengths, loss)
    ctx.save_items("pool", [
        {"id": study.examples[i]["id"], "pool_index": int(i), "split": study.examples[i]["split"],
         "variant": str(variant[j]), "score": float(chosen_scores[j]), **{k: float(v[j]) for k, v in trivial.items()}}
        for j, i in enumerate(pool)])
    ctx.save_items("selection", [
        {"id": study.examples[i]["id"], "entity": study.examples[i]["entity"], "success": int(ok)}
        for i, ok in zip(select, picked, strict=True)])
    estimates = recompute(ctx.item_rows, cfg.model_dump(mode="json"))
    return Result(estimates=estimates, values={
        "chosen": pick, "rule": RULE, "readings": list(cfg.readings), "n_readings": len(cfg.readings),
        "select_k": cfg.select_k,
        "n_select": len(select), "n_query": values["n_query"],
        "selection": {r["reading"]: {**by[r["reading"]], "composition": r["composition"], "steps": r["steps"]}
                      for r in rows},
        "reading_aurocs": values["reading_aurocs"], "chosen_composition": composition(
            [study.examples[i] for i in ranking(values, study.examples, False, pick)[: cfg.select_k]]),
        "projection_dim": int(pick.split("-")[1][1:]), "score_mode": pick.split("-")[0],
        "preconditioning": "query" if pick.endswith("-query") else "none",
        "seconds": {r["reading"]: r["seconds"] for r in rows}})


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The estimates from the committed per-item rows: one per pool example (its variant, its score
    under the chosen reading, each trivial score) and one per selection item (its success after the
    chosen reading's finetune). The clean AUROC is also given on the candidate pool alone
    (clean_auroc_candidates), the examples the selection comparisons choose from."""
    from pipeline import stats
    from pipeline.attribution.estimates import arm_success
    from pipeline.attribution.scores import variant_aurocs

    cfg = Config(**config)
    kw = {"level": cfg.level, "seed": cfg.seed}
    rows = items["pool"]
    variant = np.array([r["variant"] for r in rows])
    scores = np.array([r["score"] for r in rows])
    trivial = {name: np.array([r[name] for r in rows]) for name in ("format", "loss", "length")}
    candidate = np.array([r["split"] == "candidate" for r in rows])
    selection = items["selection"]
    return {**variant_aurocs(variant, scores, unit="pool examples", **kw),
            **baseline_aurocs(variant, scores, trivial, unit="pool examples", **kw),
            "clean_auroc_candidates": stats.auroc(variant[candidate] == "clean", scores[candidate],
                                                  unit="candidate pool examples", **kw),
            "select_success": arm_success(np.array([[r["success"] for r in selection]], dtype=float),
                                          [r["entity"] for r in selection], **kw)}
