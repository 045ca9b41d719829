"""Throughput of batched vs one-prompt-at-a-time greedy generation on a model profile.

    .venv/bin/python scripts/bench_generation.py                 # embedded 270M, 32 prompts, 8 tokens
    .venv/bin/python scripts/bench_generation.py --profile tiny --prompts 64

Prompts are few-shot capital questions from the embedded QA set; stop strings are off so that
every row generates exactly --new-tokens tokens in both modes. Prints tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from pipeline.data import build_embedded, few_shot_prompt
    from pipeline.models import generate, load

    t0 = time.perf_counter()
    lm = load(args.profile)
    print(f"loaded {args.profile} in {time.perf_counter() - t0:.1f} s")
    items = [it for it in build_embedded() if it.family == "capital"][: args.prompts]
    prompts = [few_shot_prompt(it) for it in items]
    n_tokens = len(prompts) * args.new_tokens
    generate(lm, prompts[:2], 2, batch_size=2, stop_strings=())  # warm-up

    timings = {}
    for label, batch_size in (("batched", args.batch_size), ("single", 1)):
        t0 = time.perf_counter()
        generate(lm, prompts, args.new_tokens, batch_size=batch_size, stop_strings=())
        timings[label] = time.perf_counter() - t0
        print(
            f"{label:8s} batch_size={batch_size:3d}  {timings[label]:6.2f} s  {n_tokens / timings[label]:7.1f} tok/s"
        )
    print(f"batched/single throughput ratio: {timings['single'] / timings['batched']:.2f}x")


if __name__ == "__main__":
    main()
