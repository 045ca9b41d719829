"""Draw the sample of concept sentences for the second-pass hand check (written once, then labelled
by hand against the rubric in pipeline/saefeatures/data/concepts/README.md without looking at the
first labels). Prints the sample, shuffled, without labels.

    .venv/bin/python scripts/draw_concept_audit.py > pipeline/saefeatures/data/concepts/audit.csv
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from pipeline.saefeatures.concepts import CONCEPTS, read_concept

PER_LABEL = 4  # per concept and label: 16 sentences per concept, 64 in all
SEED = 2024


def main() -> None:
    rng = np.random.default_rng(SEED)
    drawn = []
    for concept in CONCEPTS:
        rows = read_concept(concept)
        for label in range(4):
            pool = [r for r in rows if r["label"] == label]
            drawn += [pool[i] for i in sorted(rng.choice(len(pool), size=PER_LABEL, replace=False))]
    order = rng.permutation(len(drawn))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["id", "concept", "sentence", "second_label"])
    for i in order:
        r = drawn[i]
        out.writerow([r["id"], r["concept"], r["sentence"], ""])


if __name__ == "__main__":
    main()
