"""The balance and overlap of the random arms' draws under each matching design, before any
finetune: the draws depend only on the ranking, the examples and their losses, so a design can be
chosen on balance and room without seeing an outcome.

    .venv/bin/python scripts/attribution_draw_design.py [--pools 0 2 3 4]

For each selection comparison of claims/specs (its control's config, arm random) and each
`loss_pool` (0: strata of variant x family x length bin, the earlier design; n: each top example
replaced by one of the n of its variant and family nearest in the base adapter's loss and length),
it prints the standardized mean differences of the draws against the top window (the base
adapter's and the shipped model's loss, the largest over the covariates matched on composition) and
how much of the top window a draw shares on average (1: no room left), and the standardized
difference of each loss among only the examples that differ (those a draw swaps in against those
it leaves out of the top window, pooled over draws): the balance of what the comparison actually
contrasts, larger than the whole draw's by about 1 / (1 - overlap). It reads the committed
scores, readings and pool-loss results (no model is run; the tokenizer gives the lengths).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def committed(node: str, config: dict) -> dict:
    """The values of the committed result of `node` whose config has these fields."""
    for path in sorted(glob.glob(str(ROOT / "artifacts" / node / "*.provenance.json"))):
        sidecar = json.load(open(path))
        if all(sidecar["config"].get(k) == v for k, v in config.items()):
            return json.load(open(path.replace(".provenance.json", ".json")))["values"]
    raise SystemExit(f"no committed {node} result with {config}")


def main() -> None:
    from pipeline.attribution.arm import random_sets
    from pipeline.attribution.comparison import MATCHED
    from pipeline.attribution.config import (
        ArmConfig,
        ComparisonConfig,
        FinetuneConfig,
        ReadingsConfig,
        ScoresConfig,
    )
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.pool import build
    from pipeline.attribution.pool_losses import per_example
    from pipeline.attribution.scores import ranking
    from pipeline.attribution.subsets import smd, top_window
    from pipeline.models import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[0, 2, 3, 4])
    args = parser.parse_args()
    specs = []
    for path in sorted((ROOT / "claims" / "specs").glob("attribution-*.yaml")):
        spec = yaml.safe_load(path.read_text())
        control = spec.get("control")
        if isinstance(control, dict) and control["experiment"] == "pipeline.attribution.comparison":
            specs.append((spec["id"], control["config"]))
    first = ComparisonConfig(**specs[0][1])
    examples = build(first)
    lengths = np.array([len(ids) for ids in encode(load(first.profile).tokenizer, examples).ids])
    scores = committed("pipeline.attribution.scores", first.upstream(ScoresConfig))
    reading = committed("pipeline.attribution.readings", first.upstream(ReadingsConfig))["chosen"]
    losses = committed("pipeline.attribution.pool_losses", first.upstream(FinetuneConfig))
    loss, base = (per_example(losses, len(examples), name) for name in ("loss_shipped", "loss_base"))
    print(f"reading {reading}; SMD of the draws against the top window; overlap: share of the top window a draw holds")
    for claim, config in specs:
        cfg = ComparisonConfig(**config)
        order = ranking(scores, examples, cfg.overlap, reading)
        for pool in args.pools:
            arm = ArmConfig(**{**cfg.arms()["random"], "loss_pool": pool})
            draws, info = random_sets(arm, examples, lengths, order, loss, base)
            b = info["balance"]
            target = top_window(order, cfg.k, cfg.rank_from)
            swapped_in = np.concatenate([np.setdiff1d(d, target) for d in draws])
            left_out = np.concatenate([np.setdiff1d(target, d) for d in draws])
            differ = {name: smd(values[left_out], values[swapped_in]) for name, values in
                      (("base", base), ("shipped", loss))}
            composition = max(abs(b[c]) for c in MATCHED)
            print(f"{claim:36s} loss_pool {pool}: base adapter's loss {b['base_loss']:+.3f}, shipped model's "
                  f"{b['zero_shot_loss']:+.3f}, composition max {composition:.3f} (length {b['length']:+.3f}), "
                  f"overlap {info['overlap_with_top']['mean']:.2f}, borrowed {sum(info['borrowed'])}; among the examples "
                  f"that differ: base {differ['base']:+.3f}, shipped {differ['shipped']:+.3f}")


if __name__ == "__main__":
    main()
