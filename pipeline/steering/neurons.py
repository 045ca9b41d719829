"""The H-neuron alpha sweep: scale the detection probe's positive-weight neurons (the H-neurons;
`arm: negative` scales the negative-weight ones instead) by alpha (0 silences them, 1 is the model,
3 triples them) and measure compliance with counterfactual contexts on the items the model knows,
with factual QA accuracy, pushback flips and false-premise refusals beside it. Greedy decoding,
identical settings at every alpha."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.interventions.decoder import MAX_ROWS
from pipeline.steering.config import SweepConfig as Config
from pipeline.steering.config import TasksConfig, detection
from pipeline.steering.evaluate import TASKS, TaskSet, score, score_sets, token_budget
from pipeline.steering.summary import cut_off, item_rows, minimum_detectable, records_from_items, summarize


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    tasks = cfg.upstream(TasksConfig)
    return {"tasks": ("pipeline.steering.tasks", tasks), "known": ("pipeline.steering.known", tasks),
            "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint
    from pipeline.steering.judges import judges_in_use

    return {"model": fingerprint(config["profile"]), "judges": judges_in_use()}


def neuron_map(neurons: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for n in neurons:
        out.setdefault(int(n["layer"]), []).append(int(n["neuron"]))
    return out


def arm_neurons(probe: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    neurons = probe["h_neurons"] if arm == "positive" else probe["negative_neurons"]
    if not neurons:
        raise ValueError(f"the detection probe kept no {arm}-weight neuron: nothing to scale")
    return neurons


def setup(cfg: Any, ctx: Any, tasks: tuple[str, ...], split: str = "eval") -> tuple[Any, TaskSet]:
    """The model and the tasks' rows and prompts (shared by every sweep)."""
    from pipeline.models import load

    lm = load(cfg.profile)
    taskset = TaskSet(ctx, split, tasks, cfg.n_shots, cfg.seed)
    ctx.record(generation={"do_sample": False, "max_new_tokens": cfg.max_new_tokens,
                           "long_tokens": getattr(cfg, "long_tokens", None), "stop": "newline",
                           "n_shots": cfg.n_shots, "model": lm.model_id, "tasks": list(tasks), "split": split,
                           "items": {t: len(r) for t, r in taskset.rows.items()}})
    return lm, taskset


def sweep(ctx: Any, cfg: Any, lm: Any, taskset: TaskSet, make: Any, name: str, settings: Any = None
          ) -> list[dict[str, Any]]:
    """Score every setting (checkpointed one at a time); make(setting) -> context manager."""
    settings = cfg.alphas if settings is None else settings
    ckpt = ctx.checkpoint(name)
    records = []
    for k, setting in enumerate(ctx.progress(settings, total=len(settings), desc=f"{name} settings")):
        if k not in ckpt:
            ckpt[k] = score(lm, taskset, lambda s=setting: make(s), token_budget(cfg), cfg.batch_size)
        records.append(ckpt[k])
    return records


def sweep_sets(ctx: Any, cfg: Any, lm: Any, taskset: TaskSet, sets: Any, steps: list[tuple[str, int]], name: str,
               batched: bool = True) -> list[dict[str, Any]]:
    """Score every set of a pipeline.interventions.sets family; set j is saved as step steps[j][1]
    of checkpoint steps[j][0], the steps sweep() writes, so a run resumes either way. Batched, the
    sets still missing share generation passes (rows = set x prompt, MAX_ROWS rows a pass) and are
    checkpointed a pass at a time; batched=False scores them one at a time, as sweep() does."""
    ckpts = {c: ctx.checkpoint(c) for c, _ in steps}
    todo = [j for j, (c, k) in enumerate(steps) if k not in ckpts[c]]
    per_pass = max(1, MAX_ROWS // cfg.batch_size) if batched else 1
    groups = [todo[i: i + per_pass] for i in range(0, len(todo), per_pass)]
    for group in ctx.progress(groups, total=len(groups), desc=f"{name}: {len(todo)} sets, {per_pass} a pass"):
        if batched:
            records = score_sets(lm, taskset, sets.subset(group), token_budget(cfg), cfg.batch_size)
        else:
            records = [score(lm, taskset, lambda j=group[0]: sets.context(lm, j), token_budget(cfg), cfg.batch_size)]
        for j, record in zip(group, records, strict=True):
            ckpts[steps[j][0]][steps[j][1]] = record
    return [ckpts[c][k] for c, k in steps]


def estimates_of(cfg: Config, records: list[dict[str, Any]], tasks: tuple[str, ...], clusters: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    estimates, values = summarize(cfg.alphas, records, tasks, clusters, level=cfg.level, seed=cfg.seed,
                                  neutral=list(cfg.alphas).index(1.0), target=int(np.argmax(cfg.alphas)))
    values["minimum_detectable"] = {name: minimum_detectable(estimates.get(name), cfg.power, cfg.test_alpha)
                                    for name in ("compliance_slope_pp", "qa_slope_pp", "pushback_slope_pp",
                                                 "false_premise_slope_pp")}
    values["cut_off"] = cut_off(records)
    return estimates, values


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    """The sweep's estimates from its committed per-item outcomes (alpha x task x item)."""
    cfg = Config(**config)
    alphas, records, clusters = records_from_items(items["outcomes"], ("alpha",))
    if [a for (a,) in alphas] != [float(a) for a in cfg.alphas]:
        raise ValueError(f"the committed outcomes hold alphas {[a for (a,) in alphas]}, the config {list(cfg.alphas)}")
    return estimates_of(cfg, records, tuple(records[0]), clusters)[0]


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions.sets import NeuronSets

    cfg = Config(**config)
    tasks = TASKS if cfg.externality else ("compliance",)
    lm, taskset = setup(cfg, ctx, tasks)
    probe = ctx.upstream("probe").result.values
    neurons = arm_neurons(probe, cfg.arm)
    # every alpha is one set; they share generation passes (rows = alpha x item)
    steps = [(f"neurons-{cfg.arm}", k) for k in range(len(cfg.alphas))]
    records = sweep_sets(ctx, cfg, lm, taskset, NeuronSets([neuron_map(neurons)] * len(cfg.alphas), cfg.alphas),
                         steps, f"neurons-{cfg.arm}")
    estimates, values = estimates_of(cfg, records, tasks, taskset.clusters())
    values.update({"method": "H-neurons" if cfg.arm == "positive" else "negative-weight neurons", "arm": cfg.arm,
                   "n_neurons": len(neurons), "layers": sorted({n["layer"] for n in neurons}),
                   "n_items": {t: len(r) for t, r in taskset.rows.items()}})
    ctx.save_json("generations", {"rows": taskset.rows, "records": records})
    ctx.save_items("outcomes", item_rows([{"alpha": float(a)} for a in cfg.alphas], records, taskset.rows))
    estimates = recompute(ctx.item_rows, config)  # what a reader rebuilds from the committed rows
    return Result(estimates=estimates, values=values)
