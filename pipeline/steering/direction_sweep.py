"""Steering with a direction (DiffMean in the residual stream, or ITI on a few heads).

Selection, on the selection items only: every setting (DiffMean: each middle layer x strength; ITI:
each strength) is scored on compliance (the items the model knows) and factual QA accuracy. A
setting is admissible when QA accuracy drops by at most `max_qa_loss_pp` points from the unsteered
model; the admissible setting with the largest change in compliance is chosen. Then it is measured
once on the evaluation items against strength 0, with QA accuracy, pushback flips and false-premise
refusals beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.steering.config import DirectionSweepConfig as Config
from pipeline.steering.config import TasksConfig
from pipeline.steering.evaluate import TASKS, TaskSet
from pipeline.steering.neurons import setup, sweep_sets
from pipeline.steering.summary import (
    cut_off,
    item_rows,
    matrix,
    minimum_detectable,
    rates,
    records_from_items,
    summarize,
)


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    tasks = cfg.upstream(TasksConfig)
    return {"tasks": ("pipeline.steering.tasks", tasks), "known": ("pipeline.steering.known", tasks),
            "directions": ("pipeline.steering.directions", {"profile": cfg.profile, "seed": cfg.seed,
                                                            "n_heads": cfg.n_heads})}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.steering.judges import judges_in_use

    return {"model": fingerprint(config["profile"]), "judges": judges_in_use()}


def settings(cfg: Config, n_layers: int) -> list[tuple[int | None, float]]:
    """(layer, strength) pairs to try; ITI has no layer (its heads are fixed)."""
    if cfg.method == "iti":
        return [(None, s) for s in cfg.alphas]
    return [(layer, s) for layer in cfg.layers if layer < n_layers for s in cfg.alphas]


def family(method: str, arrays: dict[str, np.ndarray], meta: dict[str, Any], grid: list[tuple[int | None, float]]
           ) -> Any:
    """The settings (layer, strength) as one family of pipeline.interventions.sets: set k adds the
    direction at grid[k] (DiffMean after its layer; ITI on the chosen heads)."""
    from pipeline.interventions.sets import DirectionSets, HeadSets

    if method == "diffmean":
        return DirectionSets([layer or 0 for layer, _ in grid], [arrays["diffmean"][layer or 0] for layer, _ in grid],
                             [strength for _, strength in grid])
    shifts: dict[int, dict[int, Any]] = {}
    for head, vector in zip(meta["iti_heads"], arrays["iti"], strict=True):
        shifts.setdefault(head["layer"], {})[head["head"]] = vector
    return HeadSets([shifts] * len(grid), [strength for _, strength in grid])


def choose(grid: list[tuple[int | None, float]], compliance: np.ndarray, qa: np.ndarray, neutral_compliance: float,
           neutral_qa: float, max_loss_pp: float) -> tuple[tuple[int | None, float] | None, list[dict[str, Any]]]:
    """The admissible setting with the largest change in compliance (None if none is admissible)."""
    table = []
    for (layer, strength), c, q in zip(grid, compliance, qa, strict=True):
        admissible = bool(not np.isnan(q) and 100 * (neutral_qa - q) <= max_loss_pp and not np.isnan(c))
        table.append({"layer": layer, "strength": strength, "compliance": None if np.isnan(c) else float(c),
                      "qa_accuracy": None if np.isnan(q) else float(q), "admissible": admissible,
                      "compliance_change_pp": None if np.isnan(c) else float(100 * (c - neutral_compliance))})
    candidates = [row for row in table if row["admissible"]]
    best = max(candidates, key=lambda row: abs(row["compliance_change_pp"]), default=None)
    return ((best["layer"], best["strength"]) if best else None), table


def selection(ctx: Any, cfg: Config, lm: Any, scored: Any) -> tuple[tuple[int | None, float] | None, list[dict[str, Any]]]:
    select = TaskSet(ctx, "select", ("compliance", "qa"), cfg.n_shots, cfg.seed)
    grid = settings(cfg, lm.n_layers)
    neutral = scored(select, f"select-{cfg.method}-neutral", [(None, 0.0)])[0]
    records = scored(select, f"select-{cfg.method}", grid)
    ctx.save_items("selection", item_rows([{"layer": -1, "strength": 0.0}] + [
        {"layer": -1 if layer is None else layer, "strength": float(s)} for layer, s in grid], [neutral, *records],
        select.rows))
    c, q = rates(matrix(records, "compliance")), rates(matrix(records, "qa"))
    n_c, n_q = rates(matrix([neutral], "compliance"))[0], rates(matrix([neutral], "qa"))[0]
    chosen, table = choose(grid, c, q, n_c, n_q, cfg.max_qa_loss_pp)
    return chosen, [{**row, "neutral_compliance": float(n_c), "neutral_qa_accuracy": float(n_q)} for row in table]


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The evaluation estimates (chosen strength against 0) from the committed per-item outcomes."""
    cfg = Config(**config)
    strengths, records, clusters = records_from_items(items["outcomes"], ("strength",))
    return summarize(tuple(s for (s,) in strengths), records, tuple(records[0]), clusters, level=cfg.level,
                     seed=cfg.seed, neutral=0, target=1)[0]


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    tasks = TASKS if cfg.externality else ("compliance",)
    lm, taskset = setup(cfg, ctx, tasks)
    up = ctx.upstream("directions")
    arrays, meta = up.arrays("directions"), up.result.values

    def scored(tasks: TaskSet, name: str, grid: list[tuple[int | None, float]]) -> list[dict[str, Any]]:
        """Every setting of the grid scored (sharing generation passes), checkpointed as name/k."""
        return sweep_sets(ctx, cfg, lm, tasks, family(cfg.method, arrays, meta, grid),
                          [(name, k) for k in range(len(grid))], name)

    chosen, table = selection(ctx, cfg, lm, scored)
    ctx.record(chosen={"layer": chosen[0], "strength": chosen[1]} if chosen else None)
    if chosen is None:
        raise ValueError(f"no {cfg.method} setting keeps QA accuracy within {cfg.max_qa_loss_pp} points")
    evals = scored(taskset, f"eval-{cfg.method}", [(chosen[0], 0.0), chosen])
    _, values = summarize((0.0, chosen[1]), evals, tasks, taskset.clusters(), level=cfg.level, seed=cfg.seed,
                          neutral=0, target=1)
    ctx.save_items("outcomes", item_rows([{"strength": 0.0}, {"strength": float(chosen[1])}], evals, taskset.rows))
    estimates = recompute(ctx.item_rows, config)  # what a reader rebuilds from the committed rows
    mde = {name: minimum_detectable(estimates.get(name), cfg.power, cfg.test_alpha)
           for name in ("compliance_effect_pp", "qa_effect_pp", "pushback_effect_pp", "false_premise_effect_pp")}
    layer = chosen[0]
    layer_auroc = meta["diffmean_layer_auroc"][layer] if layer is not None else None
    values.update({"method": {"diffmean": "DiffMean", "iti": "ITI heads"}[cfg.method], "chosen_strength": chosen[1],
                   "chosen_layer": layer, "selection": table, "minimum_detectable": mde, "selection_cap": cfg.max_qa_loss_pp,
                   "n_heads_shifted": len(meta["iti_heads"]), "detection_auroc": layer_auroc,
                   "direction_norm": float(np.linalg.norm(arrays["diffmean"][layer])) if layer is not None else None,
                   "n_items": {t: len(r) for t, r in taskset.rows.items()}, "cut_off": cut_off(evals)})
    ctx.save_json("generations", {"rows": taskset.rows, "records": evals})
    return Result(estimates=estimates, values=values)
