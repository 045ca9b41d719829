"""Greedy generation on steering prompts: the cost of the intervention hooks, the gain from running a
control's random sets together (rows = set x prompt, pipeline.interventions.decoder) over one set
at a time, and this project's decoder over transformers' generate.

    .venv/bin/python scripts/bench_steering.py                      # tiny model: well under a minute
    .venv/bin/python scripts/bench_steering.py --profile embedded --prompts 4 --methods direction --parts control

Prints median wall times over --repeats and the ratios:
  hooks / plain          per method (neurons: 4 per layer x alpha 2; direction: one vector at the
                         middle layer; ITI: 4 heads at the middle layer), each generating exactly
                         --tokens tokens per prompt (no stop strings), so a steered answer that runs
                         longer or shorter does not count as hook cost (target: at most 1.2x);
  batched / sequential   per method, a --sets-set control (random sets of each kind, each a setting
                         the controls use), one pass of rows = set x prompt against --sets separate
                         generate calls, with how many generations differ in any token;
  ExactHead / float32    the greedy head at 1-64 rows: ExactHead's bfloat16 pass with its exact
                         check (the one-set path) against the plain float32 argmax the batched
                         decoder uses, and whether they pick the same tokens;
  transformers generate / this decoder, and the share of steps the bfloat16 head could not prove.
The tiny model takes short questions (its sliding window is 64 tokens); the embedded 270M model
takes 3-shot counterfactual-context compliance prompts. On a machine shared with other work, pass
--threads 1 for the embedded model too: two intra-op threads on two busy cores wait for each other
far longer than they compute (the tiny model runs on one thread unless told otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ("neurons", "direction", "iti")


def median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), out


def timed_rounds(runs: dict[str, object], repeats: int) -> dict[str, tuple[float, object]]:
    """Median time of each run, the runs interleaved round by round (so that a change in the
    machine's load falls on all of them alike), after one warm-up round."""
    out = {name: fn() for name, fn in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), out[name]) for name in runs}


def prompts_for(lm, n: int) -> list[str]:
    from pipeline.data import build_embedded, counterfactual_item
    from pipeline.steering.prompts import compliance_prompt

    capitals = [it for it in build_embedded() if it.family == "capital"]
    if lm.profile == "tiny":
        return [f"Q: {it.question}\nA:" for it in capitals if len(it.question) < 40][:n]
    items, shots = capitals[:n], capitals[n:]
    return [compliance_prompt(it, counterfactual_item(it, 0, pool=capitals).context, shots) for it in items]


def families(lm, n_sets: int, seed: int = 0) -> dict[str, object]:
    """A control's worth of random sets per method, at the settings the controls sweep."""
    import numpy as np

    from pipeline.interventions.sets import DirectionSets, HeadSets, NeuronSets

    rng = np.random.default_rng(seed)
    middle = lm.n_layers // 2
    heads = list(range(min(4, lm.n_heads)))
    return {
        "neurons": NeuronSets([{layer: rng.choice(lm.d_ffn, 4, replace=False).tolist() for layer in range(lm.n_layers)}
                               for _ in range(n_sets)], [(0.0, 3.0)[k % 2] for k in range(n_sets)]),
        "direction": DirectionSets([middle] * n_sets, [rng.normal(size=lm.d_model) for _ in range(n_sets)],
                                   [(4.0, 1.3)[k % 2] for k in range(n_sets)]),
        "iti": HeadSets([{middle: {h: rng.normal(size=lm.head_dim) for h in heads}} for _ in range(n_sets)],
                        [(4.0, 1.3)[k % 2] for k in range(n_sets)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny", help="tiny (default) or embedded (Gemma 3 270M)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--sets", type=int, default=32, help="random sets in the control")
    parser.add_argument("--tokens", type=int, default=8, help="new tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds of the hook comparison (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 for tiny, whose ops are too small to share, "
                             "else the project's)")
    parser.add_argument("--parts", default="hooks,control,head,transformers",
                        help="comma-separated: hooks (hooks / plain), control (batched / sequential), "
                             "head (ExactHead / float32), transformers (transformers' generate / this decoder)")
    args = parser.parse_args()

    from pipeline.interventions.decoder import generate_sets
    from pipeline.models import generate, load, set_threads

    threads = set_threads(1 if args.threads is None and args.profile == "tiny" else args.threads)
    lm = load(args.profile)
    methods = [m for m in args.methods.split(",") if m]
    prompts = prompts_for(lm, args.prompts)
    fams = families(lm, args.sets)
    batch, tokens = args.batch_size, args.tokens
    print(f"{args.profile}: {len(prompts)} prompts, {tokens} new tokens, batch {batch}, {threads} thread(s)")

    def fixed(cm=contextlib.nullcontext):  # exactly `tokens` tokens a prompt: equal work with and without hooks
        def fn():
            with cm():
                return generate(lm, prompts, tokens, batch_size=batch, stop_strings=())
        return fn

    parts = set(args.parts.split(","))
    runs = {} if "hooks" not in parts else {"plain": fixed(), **{m: fixed(lambda sets=fams[m]: sets.context(lm, 0))
                                                                 for m in methods}}
    times = timed_rounds(runs, args.repeats)
    plain = times["plain"][0] if runs else float("nan")
    if runs:
        print(f"  plain                         {plain:7.3f} s")
    for method in methods if runs else ():
        seconds, out = times[method]
        work = sum(len(g.token_ids) for g in out), sum(len(g.token_ids) for g in times["plain"][1])
        print(f"  {method + ' hooks':29s} {seconds:7.3f} s   hooks / plain: {seconds / plain:.2f}x"
              f"   (tokens {work[0]} vs {work[1]})")

    if "control" in parts:
        print(f"{args.sets}-set control, rows = set x prompt (stop at a newline, as the study does):")
    for method in methods if "control" in parts else ():
        sets = fams[method]
        t0 = time.perf_counter()
        one = []
        for k in range(len(sets)):
            with sets.context(lm, k):
                one.append(generate(lm, prompts, tokens, batch_size=batch))
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        many = generate_sets(lm, prompts, sets, tokens, batch_size=batch)
        batched = time.perf_counter() - t0
        differ = sum(a.token_ids != b.token_ids for x, y in zip(one, many, strict=True) for a, b in zip(x, y, strict=True))
        with sets.install(lm) as rows:
            first = rows.first_layer
        print(f"  {method:10s} sequential {sequential:7.2f} s   batched {batched:7.2f} s   "
              f"batched / sequential: {batched / sequential:.2f}x   ({sequential / batched:.1f}x faster; "
              f"layers below {first} shared; {differ} of {len(prompts) * len(sets)} generations differ)")

    if "head" in parts:  # the greedy head: ExactHead (bfloat16 pass, exact float32 check) vs plain float32
        import torch

        from pipeline.interventions.decoder import head_argmax
        from pipeline.models.sampling import ExactHead

        exact = ExactHead.of(lm)
        for rows in (1, 8, 32, 64):
            h = torch.randn(rows, exact.weight.shape[1]) * float(exact.weight.norm(dim=-1).mean())
            t_exact, _ = median_time(lambda h=h: exact.argmax(h), 3)
            t_f32, _ = median_time(lambda h=h: head_argmax(exact.weight, h), 3)
            same = bool(torch.equal(exact.argmax(h), head_argmax(exact.weight, h)))
            print(f"  head, {rows:3d} rows: ExactHead {t_exact * 1000:7.1f} ms   float32 {t_f32 * 1000:7.1f} ms   "
                  f"ExactHead / float32: {t_exact / t_f32:.2f}x   same tokens: {same}")

    if "transformers" in parts:
        ours, _ = median_time(lambda: generate(lm, prompts, tokens, batch_size=batch), 1)
        theirs, _ = median_time(lambda: generate(lm, prompts, tokens, batch_size=batch, share_prefix=False), 1)
        print(f"transformers generate / this decoder: {theirs / ours:.2f}x")
    from pipeline.models.sampling import ExactHead

    head = ExactHead.of(lm)
    print(f"bfloat16 head: {head.fallbacks} of {head.rows} rows fell back to float32 "
          f"({head.fallbacks / max(head.rows, 1):.1%}); the tokens are the float32 argmax either way")


if __name__ == "__main__":
    main()
