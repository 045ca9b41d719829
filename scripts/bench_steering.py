"""Greedy generation on the steering task's prompts: the cost of the intervention hooks, and the
gain from this project's decoder (few-shot prefixes computed once, finished rows leaving the batch,
the float32 argmax found in bfloat16 with a proof bound) over transformers' generate.

    .venv/bin/python scripts/bench_steering.py               # embedded 270M, 96 compliance prompts
    .venv/bin/python scripts/bench_steering.py --profile tiny

Prints median wall times over --repeats and the ratios: hooked / plain (target: at most 1.2x) and
transformers generate / this decoder, with the share of steps the bfloat16 head could not prove.
Runs in about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np

    from pipeline.data import build_embedded, counterfactual_item
    from pipeline.interventions import add_direction, scale_neurons, shift_heads
    from pipeline.models import generate, load
    from pipeline.steering.prompts import compliance_prompt

    lm = load(args.profile)
    capitals = [it for it in build_embedded() if it.family == "capital"]
    items, shots = capitals[: args.prompts], capitals[args.prompts :]
    prompts = [compliance_prompt(it, counterfactual_item(it, 0, pool=capitals).context, shots) for it in items]
    rng = np.random.default_rng(0)
    neurons = {layer: rng.choice(lm.d_ffn, size=2, replace=False).tolist() for layer in range(lm.n_layers)}
    direction = rng.normal(size=lm.d_model)
    heads = {lm.n_layers // 2: {h: rng.normal(size=lm.head_dim) for h in range(min(4, lm.n_heads))}}

    def run(**kw):
        return lambda: generate(lm, prompts, 8, batch_size=32, **kw)

    def hooked(cm):
        def fn():
            with cm():
                generate(lm, prompts, 8, batch_size=32)
        return fn

    t = {
        "plain (shared prefix)": median_time(run(), args.repeats),
        "transformers generate": median_time(run(share_prefix=False), args.repeats),
        "neuron scaling hooks": median_time(hooked(lambda: scale_neurons(lm, neurons, 2.0)), args.repeats),
        "residual direction hook": median_time(hooked(lambda: add_direction(lm, lm.n_layers // 2, direction, 1.0)), args.repeats),
        "ITI head hooks": median_time(hooked(lambda: shift_heads(lm, heads, 1.0)), args.repeats),
    }
    print(f"{args.profile}: {len(prompts)} compliance prompts, 8 new tokens, batch 32")
    for name, seconds in t.items():
        print(f"  {name:26s} {seconds:7.2f} s")
    plain = t["plain (shared prefix)"]
    for name in ("neuron scaling hooks", "residual direction hook", "ITI head hooks"):
        print(f"{name} / plain: {t[name] / plain:.2f}x")
    print(f"transformers generate / this decoder: {t['transformers generate'] / plain:.2f}x")
    from pipeline.models.sampling import ExactHead

    head = ExactHead.of(lm)
    print(f"bfloat16 head: {head.fallbacks} of {head.rows} rows fell back to float32 "
          f"({head.fallbacks / max(head.rows, 1):.1%}); the tokens are the float32 argmax either way")


if __name__ == "__main__":
    main()
