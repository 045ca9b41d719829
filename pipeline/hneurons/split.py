"""Step 3: balanced, question-disjoint train/test splits of the labelled questions, one per split
seed (so that intervals can carry the variance of the split, not only of the items).

Questions are grouped by what they are about (a country, an element, a city), so that no subject
has questions on both sides (e.g. an element's symbol in train and its atomic number in test).
The majority class is downsampled at random to the size of the minority class, within train and
within test, and by default within each fact family too: the 270M model gets nearly every atomic
number wrong and most symbols right, so with pooled balancing the family alone would predict the
label.
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
    """What a question is about: the element (named by its symbol in one family), else the subject
    (a country for the country families, a city, a US state)."""
    about = row["gold"] if row["family"] == "element_name" else row["subject"]
    return about.casefold()


def labelled_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The questions with a class (faithful or hallucinated), in id order."""
    return sorted((r for r in rows if r["label"] in ("faithful", "hallucinated")), key=lambda r: r["id"])


def balanced_split(ids: list[str], labels: list[int], groups: list[str], test_fraction: float, seed: Any,
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
    rows = labelled_rows(ctx.upstream("labels").json("labels"))
    ids = [r["id"] for r in rows]
    labels = [int(r["label"] == "hallucinated") for r in rows]
    group = {r["id"]: group_of(r) for r in rows}
    family = {r["id"]: r["family"] for r in rows}
    strata = [r["family"] for r in rows] if cfg.balance == "family" else None
    splits = []
    for split_seed in cfg.split_seeds:
        train, test = balanced_split(ids, labels, [group[i] for i in ids], cfg.test_fraction, [cfg.seed, split_seed],
                                     strata)
        overlap = {group[i] for i in train} & {group[i] for i in test}
        if overlap:  # cannot happen by construction; a bug here would leak test subjects into training
            raise RuntimeError(f"subjects on both sides of split {split_seed}: {sorted(overlap)[:5]}")
        label = dict(zip(ids, labels, strict=True))
        composition = {side: dict(sorted(Counter(f"{family[q]}:{'h' if label[q] else 'f'}" for q in members).items()))
                       for side, members in (("train", train), ("test", test))}
        splits.append({"seed": split_seed, "train": train, "test": test, "n_train": len(train), "n_test": len(test),
                       "n_test_per_class": len(test) // 2, "composition": composition})
    return Result(values={"splits": splits, "balance": cfg.balance, "n_labelled": len(rows),
                          "n_test_min": min(s["n_test"] for s in splits),
                          "n_test_per_class_min": min(s["n_test_per_class"] for s in splits)})
