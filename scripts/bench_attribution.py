"""Bergson's attribution throughput against a plain per-example backward pass, on the same examples.

    .venv/bin/python scripts/bench_attribution.py                  # embedded 270M, 64 pool + 16 query examples
    .venv/bin/python scripts/bench_attribution.py --profile tiny

The model carries the study's LoRA adapter (top 6 layers; a fresh one, its B matrices set to small
random values so that every LoRA gradient is non-zero). Three ways to score the same pool
examples against the same query examples, each timed in process CPU seconds and wall seconds:

  bergson          Bergson in process (projection 16), equal-length batches, logits for the tail
                   positions its loss reads (what the study runs)
  bergson-full     the same with the model's full logits (every position unembedded)
  plain            one forward and backward per example through the whole model, the adapter's
                   gradient flattened, cosine with the normalised mean unit query gradient

Prints examples per second for each, their ratios, and the Spearman correlation of the scores
with the plain ones (1.000 without projection; projection 16 loses a little).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--pool", type=int, default=64, help="pool examples scored")
    parser.add_argument("--query", type=int, default=16, help="query examples")
    parser.add_argument("--projection-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from pipeline.attribution import game
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.gradients import bergson_scores, cosine_scores, plain_gradients
    from pipeline.attribution.lora import LoraSpec, adapter
    from pipeline.models import load

    lm = load(args.profile)
    examples = [e.to_dict() for e in game.build(42, 256, 448, 64, 200, 0.2, 0.2)]
    pool_rows = [e for e in examples if e["split"] in ("base", "candidate")][: args.pool]
    query_rows = [e for e in examples if e["split"] == "query"][: args.query]
    pool, query = encode(lm.tokenizer, pool_rows), encode(lm.tokenizer, query_rows)
    n = len(pool) + len(query)
    spec = LoraSpec(layers=min(6, lm.n_layers))
    print(f"{args.profile}: {len(pool)} pool + {len(query)} query examples, "
          f"{np.mean([len(x) for x in pool.ids]):.1f} tokens on average, LoRA on the top {spec.layers} layers, "
          f"torch threads {torch.get_num_threads()}")

    timings, scores = {}, {}
    with adapter(lm, spec, seed=0) as model:
        gen = torch.Generator().manual_seed(0)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.01, generator=gen)

        def timed(name: str, fn) -> None:
            cpu, wall = time.process_time(), time.perf_counter()
            scores[name] = fn()
            timings[name] = (time.process_time() - cpu, time.perf_counter() - wall)

        for name, tail in (("bergson", True), ("bergson-full", False)):
            timed(name, lambda tail=tail: bergson_scores(lm, model, query, pool, projection_dim=args.projection_dim,
                                                         seed=0, batch_size=args.batch_size, tail=tail))
        timed("plain", lambda: cosine_scores(plain_gradients(lm, model, pool), plain_gradients(lm, model, query)))

    for name, (cpu, wall) in timings.items():
        rho = spearmanr(scores[name], scores["plain"]).statistic
        print(f"{name:>13}: {n / cpu:6.2f} examples/CPU-s  {n / wall:6.2f} examples/s wall  "
              f"({cpu:.1f} CPU-s, {wall:.1f} s)  Spearman with plain {rho:.3f}")
    plain_cpu = timings["plain"][0]
    for name in ("bergson", "bergson-full"):
        print(f"{name} vs plain per-example backward: {plain_cpu / timings[name][0]:.2f}x the throughput (CPU time)")


if __name__ == "__main__":
    main()
