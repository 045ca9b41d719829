"""Draw the blind sheet for the second labelling pass of the length-matched concept sentences
(pipeline/saefeatures/data/concepts_v2/, rubric in its README).

    .venv/bin/python scripts/draw_blind_sheet.py

Writes two files next to the data, both fully determined by SEED (rerunning gives the same bytes
as long as the data is unchanged):
  blind_sheet.csv  item, concept, sentence: every sentence once, grouped by concept (so that the
                   labeller works with one rubric at a time) and shuffled within each concept; no
                   label, no set, no data id. `item` is a random opaque code.
  key.csv          item, concept, id: the mapping from item back to the data row, for whoever
                   computes agreement. It is not given to the labeller.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "pipeline" / "saefeatures" / "data" / "concepts_v2"
CONCEPTS = ("dishonesty", "aggression", "bravery", "kindness")
SEED = 20260521


def read(concept: str) -> list[dict[str, str]]:
    with (DATA / f"{concept}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    rng = np.random.default_rng(SEED)
    blocks = []
    for concept in CONCEPTS:
        rows = read(concept)
        blocks += [(concept, rows[i]) for i in rng.permutation(len(rows))]
    codes = rng.choice(36**6, size=len(blocks), replace=False)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

    def code(n: int) -> str:
        return "".join(alphabet[(int(n) // 36**k) % 36] for k in range(6))

    items = [code(n) for n in codes]
    with (DATA / "blind_sheet.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["item", "concept", "sentence"])
        out.writerows([item, concept, row["sentence"]] for item, (concept, row) in zip(items, blocks, strict=True))
    with (DATA / "key.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["item", "concept", "id"])
        out.writerows([item, concept, row["id"]] for item, (concept, row) in zip(items, blocks, strict=True))
    print(f"wrote {len(blocks)} items to {DATA / 'blind_sheet.csv'} and {DATA / 'key.csv'}")


if __name__ == "__main__":
    main()
