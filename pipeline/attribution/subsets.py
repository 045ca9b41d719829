"""Which examples each finetune of a selection comparison trains on: the top of the ranking, random
subsets matched to it, and trivial filters at the same budget. Pure functions of the ranking and the
examples' metadata (no model), so that tests check them exactly.

    top      ranks [rank_from, rank_from + k) of the selectable pool
    random   k examples drawn from ranks >= random_from; matched: within strata of what predicts
             success besides the ranking (variant, family, token-length bin), as many from each
             stratum as the top window holds, so that every draw has its composition exactly;
             or nearest: each top example replaced by a uniform pick among the few free examples
             of its variant and family nearest to it in the base adapter's loss and length, so
             that the draws match that loss too (the top of the ranking fits the base adapter
             better than the pool does)
    format   examples whose completion has the query set's answer format (FORMAT), in a seeded
             random order, then the others; shortest / longest: by token count; lowest_loss: by
             the shipped model's mean completion loss per token (lowest first); format_loss: the
             two together, examples in the format first and by that loss within each part;
             format_base_loss: the same with the base adapter's loss (the strongest sorter of clean
             examples that readings_baselines found)

A stratum the eligible ranks cannot fill (the top window holds more of it than ranks >= random_from
do) borrows from the next coarser stratum (variant and family, then variant, then the whole pool);
the draws count how often (`relaxed`), and the balance says what that cost.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

#: The answer format of the query and evaluation completions: one capitalised name and the end of
#: the line, with no sentence around it ("It is Laos.", "The answer is Laos" and "laos" fail;
#: "U.S. Virgin Islands" passes).
FORMAT = re.compile(r"^ (?!It is |The answer is )[A-Z][^\n]*[^.!?\n]\n$")
VARIANTS = ("clean", "noisy", "off_format")


def length_bins(lengths: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bin (0..n_bins-1) of each length; ties share a bin, so bins may be fewer."""
    lengths = np.asarray(lengths, dtype=float)
    if n_bins <= 1 or len(lengths) == 0:
        return np.zeros(len(lengths), dtype=int)
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, lengths, side="right")


def strata(examples: list[dict[str, Any]], lengths: np.ndarray, indices: np.ndarray,
           n_bins: int) -> dict[int, tuple[str, str, int]]:
    """(variant, family, length bin) of each example index; bins are quantiles over `indices`."""
    indices = np.asarray(indices)
    bins = length_bins(np.asarray(lengths)[indices], n_bins)
    return {int(i): (examples[i]["variant"], examples[i]["family"], int(b)) for i, b in zip(indices, bins, strict=True)}


def matched_draw(target: np.ndarray, eligible: np.ndarray, keys: dict[int, tuple[str, str, int]],
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """len(target) examples drawn without replacement from `eligible`, as many from each stratum as
    `target` holds; a stratum short of eligible examples borrows from its coarser strata. Returns
    the sorted draw and how many examples were borrowed."""
    need: dict[tuple, int] = defaultdict(int)
    for i in target:
        need[keys[int(i)]] += 1
    free = {int(i) for i in eligible}
    chosen: list[int] = []
    borrowed = 0
    for level in (3, 2, 1, 0):  # (variant, family, bin), (variant, family), (variant,), ()
        members: dict[tuple, list[int]] = defaultdict(list)
        for i in sorted(free):
            members[keys[i][:level]].append(i)
        short: dict[tuple, int] = defaultdict(int)
        for key in sorted(need, key=repr):
            n = need[key]
            pool = members.get(key, [])
            take = min(n, len(pool))
            if take:
                picked = rng.choice(np.array(pool), size=take, replace=False).tolist()
                chosen += picked
                free.difference_update(picked)
                taken = set(picked)
                members[key] = [i for i in pool if i not in taken]
            if n > take:
                short[key[: max(level - 1, 0)]] += n - take
        if level < 3:
            borrowed += sum(need.values()) - sum(short.values())
        need = short
        if not need:
            break
    if need:
        raise ValueError(f"cannot draw {len(target)} examples from the {len(eligible)} eligible")
    return np.sort(np.array(chosen, dtype=int)), borrowed


def nearest_draw(target: np.ndarray, eligible: np.ndarray, keys: dict[int, tuple[str, str, int]],
                 value: np.ndarray, pool: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """len(target) examples drawn without replacement from `eligible`, one per target example: a
    uniform pick among the `pool` free examples of its stratum nearest to it in `value` (ties by
    index), the target example itself among them when eligible; a stratum with no free example
    borrows from its coarser strata. Target examples are served in a random order. Returns the
    sorted draw and how many examples were borrowed."""
    value = np.asarray(value, dtype=float)
    value = value[:, None] if value.ndim == 1 else value
    free = {int(i) for i in eligible}
    chosen: list[int] = []
    borrowed = 0
    depth = len(next(iter(keys.values())))
    for i in rng.permutation(np.asarray(target)):
        i = int(i)
        for level in range(depth, -1, -1):
            members = np.array(sorted(j for j in free if keys[j][:level] == keys[i][:level]), dtype=int)
            if len(members):
                break
        else:
            raise ValueError(f"cannot draw {len(target)} examples from the {len(eligible)} eligible")
        borrowed += level < depth
        near = members[np.lexsort((members, np.linalg.norm(value[members] - value[i], axis=1)))][:pool]
        pick = int(rng.choice(near))
        chosen.append(pick)
        free.discard(pick)
    return np.sort(np.array(chosen, dtype=int)), borrowed


def random_draws(order: np.ndarray, k: int, rank_from: int, random_from: int, n: int, seed: int, *,
                 matched: bool, keys: dict[int, tuple[str, str, int]] | None = None,
                 value: np.ndarray | None = None, pool: int = 0) -> list[tuple[np.ndarray, int]]:
    """n random subsets of k from ranks >= random_from, each (sorted indices, examples borrowed).
    matched: within strata (`keys`); with `pool` > 0 also near each top example in `value`
    (nearest_draw), else as many from each stratum as the top window holds (matched_draw)."""
    eligible = order[random_from:]
    if len(eligible) < k:
        raise ValueError(f"cannot draw {k} examples from the {len(eligible)} at ranks >= {random_from}")
    if pool and value is None:
        raise ValueError("a draw matched on the nearest values needs the value of each example")
    target = top_window(order, k, rank_from)
    out = []
    for r in range(n):
        rng = np.random.default_rng([seed, r, 7])
        if matched and pool:
            assert keys is not None and value is not None
            out.append(nearest_draw(target, eligible, keys, value, pool, rng))
        elif matched:
            assert keys is not None
            out.append(matched_draw(target, eligible, keys, rng))
        else:
            out.append((np.sort(rng.choice(eligible, size=k, replace=False)), 0))
    return out


def top_window(order: np.ndarray, k: int, rank_from: int = 0) -> np.ndarray:
    window = order[rank_from: rank_from + k]
    if len(window) < k:
        raise ValueError(f"ranks {rank_from}..{rank_from + k - 1} do not exist: the selectable pool has "
                         f"{len(order)} examples")
    return np.asarray(window)


def filtered(name: str, order: np.ndarray, k: int, examples: list[dict[str, Any]], lengths: np.ndarray,
             zero_shot_loss: np.ndarray | None, seed: int, base_loss: np.ndarray | None = None) -> np.ndarray:
    """The k examples of the selectable pool (`order`'s members) a trivial filter keeps."""
    pool = np.sort(np.asarray(order))
    if len(pool) < k:
        raise ValueError(f"the selectable pool has {len(pool)} examples, fewer than k = {k}")
    lengths = np.asarray(lengths)
    if name == "format":
        shuffled = np.random.default_rng([seed, 13]).permutation(pool)
        fits = np.array([bool(FORMAT.match(examples[i]["completion"])) for i in shuffled])
        ranked = np.concatenate([shuffled[fits], shuffled[~fits]])
    elif name in ("shortest", "longest"):
        sign = 1 if name == "shortest" else -1
        ranked = pool[np.lexsort((pool, sign * lengths[pool]))]
    elif name in ("lowest_loss", "format_loss", "format_base_loss"):
        loss, whose = (base_loss, "base adapter") if name == "format_base_loss" else (zero_shot_loss, "shipped model")
        if loss is None:
            raise ValueError(f"the {name} filter needs the {whose}'s loss of each pool example")
        keys = [pool, np.asarray(loss)[pool]]
        if name != "lowest_loss":
            keys.append(np.array([not FORMAT.match(examples[i]["completion"]) for i in pool]))
        ranked = pool[np.lexsort(keys)]
    else:
        raise ValueError(f"unknown filter {name!r}")
    return np.sort(ranked[:k])


# ---- balance -------------------------------------------------------------------------------------
def smd(chosen: np.ndarray, drawn: np.ndarray) -> float:
    """Standardized mean difference of a covariate, drawn minus chosen (0 when both are constant)."""
    from pipeline.hneurons.probe_random import smd as _smd

    return _smd(chosen, drawn)


def covariates(examples: list[dict[str, Any]], lengths: np.ndarray, zero_shot_loss: np.ndarray | None = None,
               base_loss: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-example covariates of success besides the ranking: variant indicators, family indicators,
    token length, and (not matched on, shown) difficulty, clue count, ambiguity, the shipped model's
    and the base adapter's loss."""
    out = {v: np.array([e["variant"] == v for e in examples], dtype=float) for v in VARIANTS}
    for family in sorted({e["family"] for e in examples}):
        out[f"family:{family}"] = np.array([e["family"] == family for e in examples], dtype=float)
    out["length"] = np.asarray(lengths, dtype=float)
    out["difficulty"] = np.array([e["difficulty"] for e in examples], dtype=float)
    out["n_clues"] = np.array([e["n_clues"] for e in examples], dtype=float)
    out["ambiguous"] = np.array([e["ambiguous"] for e in examples], dtype=float)
    if zero_shot_loss is not None:
        out["zero_shot_loss"] = np.asarray(zero_shot_loss, dtype=float)
    if base_loss is not None:
        out["base_loss"] = np.asarray(base_loss, dtype=float)
    return out


def balance(target: np.ndarray, draws: list[np.ndarray], cov: dict[str, np.ndarray]) -> dict[str, float]:
    """SMD of each covariate, all draws' examples against the target window's (the engine reads
    `balance`); `family` is the largest |SMD| over the family indicators."""
    drawn = np.concatenate(draws)
    out = {name: round(smd(values[target], values[drawn]), 4) for name, values in cov.items()
           if not name.startswith("family:")}
    families = [abs(smd(v[target], v[drawn])) for name, v in cov.items() if name.startswith("family:")]
    out["family"] = round(max(families), 4) if families else 0.0
    return out


def overlap(target: np.ndarray, draws: list[np.ndarray]) -> dict[str, float]:
    """How much of the top window each draw shares: the room the matched control leaves (1: none)."""
    shares = np.array([len(np.intersect1d(target, d)) / len(target) for d in draws])
    return {"mean": round(float(shares.mean()), 4), "min": round(float(shares.min()), 4),
            "max": round(float(shares.max()), 4)}
