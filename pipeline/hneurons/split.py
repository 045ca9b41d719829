"""Step 3: a balanced, question-disjoint train/test split of the labelled questions.

Questions are grouped by what they are about (a country, an element), so that no subject has
questions on both sides (e.g. an element's symbol in train and its atomic number in test). The
majority class is downsampled at random to the size of the minority class, within train and within
test, and by default within each fact family too: the 270M model gets nearly every atomic number
wrong and most symbols right, so with pooled balancing the family alone would predict the label.
"""

from __future__ import annotations

from collections import Counter
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


def balanced_split(ids: list[str], labels: list[int], groups: list[str], test_fraction: float, seed: int,
                   strata: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Subject-disjoint train/test ids with equal classes on each side (and within each stratum)."""
    rng = np.random.default_rng(seed)
    strata = strata or [""] * len(ids)
    unique = sorted(set(groups))
    test_groups = set(rng.choice(unique, size=max(1, round(len(unique) * test_fraction)), replace=False).tolist())
    sides: dict[str, list[str]] = {"train": [], "test": []}
    for side in sides:
        for stratum in sorted(set(strata)):
            pick = [i for i, g in enumerate(groups) if (g in test_groups) == (side == "test") and strata[i] == stratum]
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
    hallucinated = {r["id"] for r in rows if r["label"] == "hallucinated"}
    labels = [int(r["label"] == "hallucinated") for r in rows]
    group = {r["id"]: group_of(r) for r in rows}
    strata = [r["family"] for r in rows] if cfg.balance == "family" else None
    train, test = balanced_split(ids, labels, [group[i] for i in ids], cfg.test_fraction, cfg.seed, strata)
    overlap = {group[i] for i in train} & {group[i] for i in test}
    if overlap:  # cannot happen by construction; a bug here would leak test subjects into training
        raise RuntimeError(f"subjects on both sides of the split: {sorted(overlap)[:5]}")
    family = {r["id"]: r["family"] for r in rows}
    composition = {side: dict(sorted(Counter(f"{family[q]}:{'h' if q in hallucinated else 'f'}" for q in members).items()))
                   for side, members in (("train", train), ("test", test))}
    return Result(values={"train": train, "test": test, "n_train": len(train), "n_test": len(test),
                          "balance": cfg.balance, "composition": composition,
                          "n_empty_responses": len(labelled) - len(rows)})
