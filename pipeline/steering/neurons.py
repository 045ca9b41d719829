"""The H-neuron alpha sweep: scale the detection probe's neurons by alpha (0 silences them, 1 is the
model, 3 triples them) and measure compliance with counterfactual contexts, with factual QA
accuracy and pushback flips beside it. Greedy decoding, identical settings at every alpha."""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.steering.config import SweepConfig as Config
from pipeline.steering.config import TasksConfig, detection
from pipeline.steering.evaluate import TASKS, score, task_prompts
from pipeline.steering.summary import minimum_detectable, summarize


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    return {"tasks": ("pipeline.steering.tasks", cfg.upstream(TasksConfig)),
            "probe": ("pipeline.hneurons.probe", detection(cfg.profile, cfg.seed).model_dump(mode="json"))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    from pipeline.models import fingerprint

    return {"model": fingerprint(config["profile"])}


def neuron_map(neurons: list[dict[str, Any]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for n in neurons:
        out.setdefault(int(n["layer"]), []).append(int(n["neuron"]))
    return out


def shot_pool(ctx: Any) -> list[Any]:
    """The items few-shot examples are drawn from (detection-train subjects, see tasks)."""
    from pipeline.data import build_embedded

    ids = set(ctx.upstream("tasks").result.values["shot_pool"])
    return [it for it in build_embedded() if it.id in ids]


def eval_setup(cfg: Config, ctx: Any, tasks: tuple[str, ...]) -> tuple[Any, list[dict[str, Any]], dict[str, list[str]]]:
    """The model, the evaluation items and their prompts per task (shared by every sweep)."""
    from pipeline.models import load

    lm = load(cfg.profile)
    items = [r for r in ctx.upstream("tasks").json("items") if r["split"] == "eval"]
    pool = shot_pool(ctx)
    ctx.record(generation={"do_sample": False, "max_new_tokens": cfg.max_new_tokens, "stop": "newline",
                           "n_shots": cfg.n_shots, "model": lm.model_id, "tasks": list(tasks)})
    return lm, items, task_prompts(items, pool, cfg.n_shots, cfg.seed, tasks)


def sweep(ctx: Any, cfg: Config, lm: Any, items: list[dict[str, Any]], prompts: dict[str, list[str]],
          make: Any, name: str) -> list[dict[str, Any]]:
    """Score every alpha (checkpointed one alpha at a time); make(alpha) -> context manager."""
    ckpt = ctx.checkpoint(name)
    records = []
    for k, alpha in enumerate(ctx.progress(cfg.alphas, total=len(cfg.alphas), desc=f"{name} alphas")):
        if k not in ckpt:
            ckpt[k] = score(lm, items, prompts, lambda a=alpha: make(a), cfg.max_new_tokens, cfg.batch_size)
        records.append(ckpt[k])
    return records


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.interventions import scale_neurons

    cfg = Config(**config)
    tasks = TASKS if cfg.externality else ("compliance",)
    lm, items, prompts = eval_setup(cfg, ctx, tasks)
    mde = minimum_detectable(len(items), cfg.level, cfg.power, cfg.test_alpha, cfg.alphas)  # before the sweep
    ctx.record(minimum_detectable_effect=mde)
    probe = ctx.upstream("probe").result.values
    neurons = neuron_map(probe["neurons"])
    records = sweep(ctx, cfg, lm, items, prompts, lambda a: scale_neurons(lm, neurons, a), "neurons")
    estimates, values = summarize(cfg.alphas, records, tasks, level=cfg.level, seed=cfg.seed,
                                  neutral=list(cfg.alphas).index(1.0), target=int(np.argmax(cfg.alphas)))
    values.update({"method": "H-neurons", "n_neurons": probe["n_neurons"], "n_items": len(items),
                   "minimum_detectable": mde})
    ctx.save_json("generations", records)
    return Result(estimates=estimates, values=values)
