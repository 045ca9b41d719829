"""Steering with a direction (DiffMean in the residual stream, or ITI on a few heads): the strength
is chosen on the selection split (the largest change in compliance whose answer-attempt rate stays
near the unsteered one), then measured once on the evaluation split against strength 0, with
factual QA accuracy, pushback flips and the attempt rate beside it."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline import stats
from pipeline.steering.config import DirectionSweepConfig as Config
from pipeline.steering.config import TasksConfig
from pipeline.steering.evaluate import TASKS, score, task_prompts
from pipeline.steering.neurons import eval_setup, shot_pool, sweep
from pipeline.steering.summary import matrix, minimum_detectable, series, summarize


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"tasks": ("pipeline.steering.tasks", cfg.upstream(TasksConfig)),
            "directions": ("pipeline.steering.directions", {"profile": cfg.profile, "seed": cfg.seed,
                                                            "n_heads": cfg.n_heads})}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def intervention(lm: Any, cfg: Config, up: Any) -> Any:
    """strength -> context manager adding the chosen direction at that strength."""
    from pipeline.interventions import add_direction, shift_heads

    arrays, meta = up.arrays("directions"), up.result.values
    if cfg.method == "diffmean":
        return lambda s: add_direction(lm, meta["diffmean_layer"], arrays["diffmean"], s)
    shifts: dict[int, dict[int, Any]] = {}
    for head, vector in zip(meta["iti_heads"], arrays["iti"], strict=True):
        shifts.setdefault(head["layer"], {})[head["head"]] = vector
    return lambda s: shift_heads(lm, shifts, s)


def attempt_rate(M: np.ndarray) -> np.ndarray:
    """Per setting, the share of items whose generation parsed as an answer."""
    return (~np.isnan(M)).mean(axis=0)


def choose(alphas: tuple[float, ...], M: np.ndarray, min_ratio: float) -> tuple[float, list[dict[str, Any]]]:
    """The admissible nonzero strength with the largest change in compliance, and the table."""
    attempts = attempt_rate(M)
    parsed = ~np.isnan(M)
    rates = np.array([M[parsed[:, k], k].mean() if parsed[:, k].any() else np.nan for k in range(M.shape[1])])
    zero = alphas.index(0.0)
    table = [{"strength": a, "compliance": None if np.isnan(r) else float(r), "attempt_rate": float(t),
              "admissible": bool(t >= min_ratio * attempts[zero])} for a, r, t in zip(alphas, rates, attempts, strict=True)]
    candidates = [row for row in table if row["strength"] != 0.0 and row["admissible"]]
    best = max(candidates, key=lambda row: abs(row["compliance"] - rates[zero]), default=None)
    return (best["strength"] if best else 0.0), table


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    tasks = TASKS if cfg.externality else ("compliance",)
    lm, items, prompts = eval_setup(cfg, ctx, tasks)
    make = intervention(lm, cfg, ctx.upstream("directions"))
    # 1. choose the strength on the selection split (compliance only)
    select = [r for r in ctx.upstream("tasks").json("items") if r["split"] == "select"]
    select_prompts = task_prompts(select, shot_pool(ctx), cfg.n_shots, cfg.seed, ("compliance",))
    records = sweep(ctx, cfg, lm, select, select_prompts, make, f"select-{cfg.method}")
    M = matrix(records, "compliance", "strict")
    chosen, table = choose(cfg.alphas, M, cfg.min_attempt_ratio)
    # 2. measure once on the evaluation split: strength 0 against the chosen strength
    mde = minimum_detectable(len(items), cfg.level, cfg.power, cfg.test_alpha, (0.0, 1.0))
    ctx.record(minimum_detectable_effect=mde, chosen_strength=chosen)
    ckpt = ctx.checkpoint(f"eval-{cfg.method}")
    evals = []
    for k, strength in enumerate((0.0, chosen)):
        if k not in ckpt:
            ckpt[k] = score(lm, items, prompts, lambda s=strength: make(s), cfg.max_new_tokens, cfg.batch_size)
        evals.append(ckpt[k])
    estimates, values = summarize((0.0, chosen), evals, tasks, level=cfg.level, seed=cfg.seed, neutral=0, target=1)
    for name in [n for n in estimates if "slope" in n]:
        del estimates[name]  # two settings: the effect is the estimate, a slope would repeat it
    Mev = matrix(evals, "compliance", "strict")
    for k, name in ((0, "attempt_rate_neutral"), (-1, "attempt_rate_chosen")):
        estimates[name] = stats.proportion(int((~np.isnan(Mev[:, k])).sum()), Mev.shape[0], cfg.level, unit="items")
    meta = ctx.upstream("directions").result.values
    values.update({"method": {"diffmean": "DiffMean", "iti": "ITI heads"}[cfg.method], "chosen_strength": chosen,
                   "diffmean_layer": meta["diffmean_layer"], "n_heads_shifted": len(meta["iti_heads"]),
                   "selection": table, "selection_series": series(cfg.alphas, M, records, "compliance", "strict", cfg.level),
                   "n_items": len(items), "n_select": len(select), "minimum_detectable": mde})
    ctx.save_json("generations", {"select": records, "eval": evals})
    return Result(estimates=estimates, values=values)
