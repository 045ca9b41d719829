"""Step 3: a balanced, question-disjoint train/test split of the labelled questions.

Questions are grouped by what they are about (a country, an element), so that no subject has questions on
both sides (e.g. an element's symbol in train and its atomic number in test). The majority class
is downsampled at random to the size of the minority class, within train and within test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from claims import Result
from pipeline.hneurons.config import SampleConfig
from pipeline.hneurons.config import SplitConfig as Config


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {"labels": ("pipeline.hneurons.sample", Config(**config).upstream(SampleConfig))}


def group_of(row: dict[str, Any]) -> str:
    """What a question is about: the country, or the element (named by its symbol in one family)."""
    about = row["gold"] if row["family"] == "element_name" else row["subject"]
    return about.casefold()


def balanced_split(ids: list[str], labels: list[int], groups: list[str], test_fraction: float, seed: int
                   ) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    unique = sorted(set(groups))
    test_groups = set(rng.choice(unique, size=max(1, round(len(unique) * test_fraction)), replace=False).tolist())
    sides: dict[str, list[str]] = {"train": [], "test": []}
    for side in sides:
        pick = [i for i, g in enumerate(groups) if (g in test_groups) == (side == "test")]
        by_class = [[ids[i] for i in pick if labels[i] == c] for c in (0, 1)]
        n = min(len(by_class[0]), len(by_class[1]))
        for members in by_class:
            sides[side] += sorted(rng.choice(members, size=n, replace=False).tolist()) if n else []
    return sorted(sides["train"]), sorted(sides["test"])


def run(config: dict[str, Any], ctx: Any) -> Result:
    cfg = Config(**config)
    labelled = [r for r in ctx.upstream("labels").json("labels") if r["label"] is not None]
    rows = [r for r in labelled if r["response"]]  # an empty answer has no tokens to read
    ids = [r["id"] for r in rows]
    labels = [int(r["label"] == "hallucinated") for r in rows]
    group = {r["id"]: group_of(r) for r in rows}
    train, test = balanced_split(ids, labels, [group[i] for i in ids], cfg.test_fraction, cfg.seed)
    overlap = {group[i] for i in train} & {group[i] for i in test}
    if overlap:  # cannot happen by construction; a bug here would leak test subjects into training
        raise RuntimeError(f"subjects on both sides of the split: {sorted(overlap)[:5]}")
    return Result(values={"train": train, "test": test, "n_train": len(train), "n_test": len(test),
                          "n_empty_responses": len(labelled) - len(rows)})
