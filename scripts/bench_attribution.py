"""Where the attribution study's time goes: Bergson's attribution throughput against a plain
per-example backward pass, and several finetunes trained one at a time against one batched pass.

    .venv/bin/python scripts/bench_attribution.py                  # embedded 270M, 64 pool + 16 query examples
    .venv/bin/python scripts/bench_attribution.py --profile tiny
    .venv/bin/python scripts/bench_attribution.py --parts finetune --jobs 4 --k 32
    .venv/bin/python scripts/bench_attribution.py --parts losses --jobs 4

The model carries the study's LoRA adapter (top 6 layers; a fresh one, its B matrices set to small
random values so that every LoRA gradient is non-zero). Three ways to score the same pool
examples against the same query examples, each timed in process CPU seconds and wall seconds:

  bergson          Bergson in process (projection 16), equal-length batches, logits for the tail
                   positions its loss reads (what the study runs)
  bergson-full     the same with the model's full logits (every position unembedded)
  bergson-cached   the same starting from the cached residual stream entering the first adapted
                   layer (the scores node's default: the layers below carry no adapter)
  plain            one forward and backward per example through the whole model, the adapter's
                   gradient flattened, cosine with the normalised mean unit query gradient

Prints examples per second for each, their ratios, and the Spearman correlation of the scores
with the plain ones (1.000 without projection; projection 16 loses a little).

The finetune part trains --jobs fresh adapters on --k examples each (the base schedule: 2 epochs,
batch 8) and scores each on the evaluation items, first one job at a time (what runs.py does with
parallel_adapters 1), then all in one batched pass (pipeline/attribution/batched.py), and prints
seconds per finetune for each, the batched/sequential ratio, and the largest difference in held-out
loss between the two.

The ridge part fits the fingerprint's family-held-out ridge (pipeline/attribution/estimates.py)
to --targets shuffled targets on synthetic sparse features of the fingerprint's shape (704
examples, 2048 latents, 10 families), one fit at a time and then factored once for all
(pipeline/attribution/ridge.py), and prints seconds per target for each, their ratio, and the
largest difference between the two.
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
    parser.add_argument("--parts", default="bergson,finetune,ridge", help="comma-separated: bergson, finetune, ridge, losses")
    parser.add_argument("--targets", type=int, default=4, help="ridge part: shuffled targets fit")
    parser.add_argument("--jobs", type=int, default=4, help="finetune part: finetunes per batched pass")
    parser.add_argument("--k", type=int, default=32, help="finetune part: examples per finetune")
    parser.add_argument("--eval", type=int, default=64, help="finetune part: evaluation items scored")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from pipeline.attribution import game
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.gradients import (
        bergson_gradients,
        bergson_scores,
        cached_lower,
        cosine_scores,
        plain_gradients,
        reading_scores,
    )
    from pipeline.attribution.lora import LoraSpec, adapter
    from pipeline.models import load

    if "ridge" in parts:
        bench_ridge(args)
    if "losses" in parts:
        bench_losses(args)
    if not parts & {"finetune", "bergson"}:
        return
    lm = load(args.profile)
    if "finetune" in parts:
        bench_finetunes(lm, args)
    if "bergson" not in parts:
        return
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
        both = encode(lm.tokenizer, pool_rows + query_rows)
        lower = cached_lower(both, range(len(both)), Residuals.capture(lm, both, spec.first_layer(lm.n_layers)))

        def cached() -> np.ndarray:
            q, t = bergson_gradients(lm, model, query, pool, projection_dim=args.projection_dim, seed=0,
                                     batch_size=args.batch_size, lower=lower)
            return reading_scores(q, t, "mean", "none")

        timed("bergson-cached", cached)
        timed("plain", lambda: cosine_scores(plain_gradients(lm, model, pool), plain_gradients(lm, model, query)))

    for name, (cpu, wall) in timings.items():
        rho = spearmanr(scores[name], scores["plain"]).statistic
        print(f"{name:>13}: {n / cpu:6.2f} examples/CPU-s  {n / wall:6.2f} examples/s wall  "
              f"({cpu:.1f} CPU-s, {wall:.1f} s)  Spearman with plain {rho:.3f}")
    plain_cpu = timings["plain"][0]
    for name in ("bergson", "bergson-full", "bergson-cached"):
        print(f"{name} vs plain per-example backward: {plain_cpu / timings[name][0]:.2f}x the throughput (CPU time)")
    print(f"bergson-cached vs bergson: {timings['bergson'][0] / timings['bergson-cached'][0]:.2f}x (CPU time)")


def bench_losses(args) -> None:
    """The batched pass's loss terms at the study's shape (--jobs jobs x 8 rows x about 4.5 completion
    tokens, the 262,144-token vocabulary), forward and backward: each job's block of logits sliced
    and given to F.cross_entropy (the batched pass until session 21) against pipeline.attribution.batched.job_losses."""
    import time

    import torch
    import torch.nn.functional as F

    from pipeline.attribution.batched import job_losses

    blocks = [36] * args.jobs
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(sum(blocks), 262_144, generator=gen)
    targets = torch.randint(0, 262_144, (sum(blocks),), generator=gen)

    def sliced(x):
        out, at = [], 0
        for n in blocks:
            out.append(F.cross_entropy(x[at: at + n], targets[at: at + n]))
            at += n
        return out

    seconds, grads = {}, {}
    for name, fn in (("sliced", sliced), ("gathered", lambda x: job_losses(x, targets, blocks))):
        start = time.perf_counter()
        for _ in range(args.targets):
            x = logits.clone().requires_grad_(True)
            torch.stack(fn(x)).sum().backward()
        seconds[name], grads[name] = (time.perf_counter() - start) / args.targets, x.grad
    print(f"loss terms: {args.jobs} jobs x {blocks[0]} tokens; sliced {seconds['sliced']:.3f} s per step, gathered "
          f"{seconds['gathered']:.3f} s ({seconds['sliced'] / seconds['gathered']:.1f}x); gradients bit-equal: "
          f"{torch.equal(grads['sliced'], grads['gathered'])}")


def bench_ridge(args) -> None:
    import numpy as np

    from pipeline.attribution.estimates import grouped_predictions
    from pipeline.attribution.ridge import GroupedRidge

    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(704, 2048))) * (rng.random((704, 2048)) < 0.05)
    groups = np.repeat([f"family{i}" for i in range(10)], 71)[:704]
    Y = rng.random((704, args.targets))
    alphas = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    start = time.perf_counter()
    one = np.stack([grouped_predictions(X, Y[:, j], groups, alphas) for j in range(args.targets)], axis=1)
    separate = (time.perf_counter() - start) / args.targets
    start = time.perf_counter()
    together = GroupedRidge(X, groups, alphas).predict(Y)
    factored = (time.perf_counter() - start) / args.targets
    print(f"ridge: {args.targets} targets; one at a time {separate:.2f} s per target, factored {factored:.2f} s "
          f"per target ({separate / factored:.1f}x; the factoring is paid once, so the ratio grows with the "
          f"targets); largest difference {np.abs(one - together).max():.1e}")


def bench_finetunes(lm, args) -> None:
    """Seconds per finetune (train + evaluate), one at a time and batched, and their ratio."""
    import contextlib
    import time

    import numpy as np

    from pipeline.attribution import game
    from pipeline.attribution.encoding import encode
    from pipeline.attribution.forward import Residuals
    from pipeline.attribution.lora import LoraSpec
    from pipeline.attribution.runs import Job, finetune_jobs

    rows = [e.to_dict() for e in game.build(42, 256, 448, 64, 200, 0.2, 0.2)]
    pool = [e for e in rows if e["split"] in ("base", "candidate")][: 4 * args.k]
    held = [e for e in rows if e["split"] == "eval"][: args.eval]
    examples = pool + held
    enc = encode(lm.tokenizer, examples)
    spec = LoraSpec(layers=min(6, lm.n_layers))
    cache = Residuals.capture(lm, enc, spec.first_layer(lm.n_layers))
    study = type("Study", (), {"lm": lm, "residuals": cache, "encoded": enc, "examples": examples, "seconds": {},
                               "timed": lambda self, name: contextlib.nullcontext()})()
    rng = np.random.default_rng(0)
    jobs = [Job(str(r), np.sort(rng.choice(len(pool), args.k, replace=False)), seed=r, lr=1e-3, epochs=2, init=r)
            for r in range(args.jobs)]
    held_out = np.arange(len(pool), len(examples))
    out = {}
    for parallel in (1, args.jobs):
        wall = time.perf_counter()
        out[parallel] = finetune_jobs(study, spec, jobs, held_out, {}, batch_size=8, eval_batch_size=32,
                                      parallel=parallel)
        out[parallel + 1000] = time.perf_counter() - wall
    one, together = out[1001] / args.jobs, out[args.jobs + 1000] / args.jobs
    gap = max(abs(a["nll"] - b["nll"]) for a, b in zip(out[1], out[args.jobs], strict=True))
    print(f"finetunes: {args.jobs} jobs x {args.k} examples, 2 epochs, {len(held_out)} evaluation items")
    print(f"  one at a time: {one:.2f} s per finetune; batched ({args.jobs} per pass): {together:.2f} s per finetune")
    print(f"  batched/sequential ratio: {together / one:.2f} ({one / together:.2f}x faster); largest held-out "
          f"loss difference {gap:.2e}")


if __name__ == "__main__":
    main()
