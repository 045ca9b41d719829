"""From per-item outcomes at each setting to estimates: rates per setting with intervals, the slope
in percentage points per unit of alpha (bootstrap over items, paired across settings), the
effect between two settings, parse failures and truncations, and the minimum detectable effect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from claims import Estimate
from pipeline import stats
from pipeline.steering.evaluate import task_metric
from pipeline.steering.judges import JUDGES


def matrix(records: Sequence[dict[str, Any]], task: str, judge: str) -> np.ndarray:
    """(items, settings) of 1/0/NaN for one task and judge."""
    return np.stack([task_metric(task, r[task][judge]) for r in records], axis=1)


def rate(column: np.ndarray, level: float, unit: str) -> Estimate:
    parsed = column[~np.isnan(column)]
    return stats.proportion(int(parsed.sum()), len(parsed), level, unit=unit)


COMPLETE = "items parsed at every setting compared"
MIN_COMPLETE = 5


def complete(M: np.ndarray) -> np.ndarray:
    """Rows (items) with a parsed outcome at every setting: paired estimates use only these, and
    the parse failures they leave out are reported beside them."""
    return M[~np.isnan(M).any(axis=1)]


def slope_pp(alphas: Sequence[float], M: np.ndarray, level: float, seed: int) -> Estimate | None:
    """Slope of the rate on alpha, in percentage points per unit, over items parsed at every
    setting, resampled jointly across settings (paired). None when too few items parsed."""
    a, C = np.asarray(alphas, dtype=float), complete(M)
    if len(C) < MIN_COMPLETE:
        return None
    return stats.bootstrap_items(lambda idx: 100 * stats.slope(a, C[idx]), len(C), level=level, seed=seed, unit=COMPLETE)


def effect_pp(M: np.ndarray, i: int, j: int, level: float, seed: int) -> Estimate | None:
    """Rate at setting j minus rate at setting i, in percentage points, paired over the items
    parsed at both. None when too few items parsed."""
    C = complete(M[:, [i, j]])
    if len(C) < MIN_COMPLETE:
        return None
    return stats.bootstrap_items(lambda idx: 100 * (C[idx, 1].mean() - C[idx, 0].mean()), len(C),
                                 level=level, seed=seed, unit=COMPLETE)


def series(alphas: Sequence[float], M: np.ndarray, records: Sequence[dict[str, Any]], task: str, judge: str,
           level: float) -> list[dict[str, Any]]:
    out = []
    for k, alpha in enumerate(alphas):
        est = rate(M[:, k], level, "items")
        out.append({"alpha": float(alpha), "value": est.value, "ci_low": est.ci[0] if est.ci else None,
                    "ci_high": est.ci[1] if est.ci else None, "n": est.n,
                    "parse_failures": int(np.isnan(M[:, k]).sum()),
                    "truncated": sum(f == "length" for f in records[k][task]["finish"])})
    return out


def minimum_detectable(n: int, level: float, power: float, test_alpha: float, alphas: Sequence[float]) -> dict[str, float]:
    """Before a sweep: the smallest compliance difference between two settings (pp) and the
    corresponding slope over the alpha range (pp per unit) detectable at this n."""
    diff = 100 * stats.min_detectable_difference(n, 0.5, alpha=test_alpha, power=power)
    span = max(alphas) - min(alphas)
    return {"n": n, "power": power, "test_alpha": test_alpha, "mde_pp": diff, "mde_slope_pp": diff / span if span else float("nan")}


def summarize(alphas: Sequence[float], records: Sequence[dict[str, Any]], tasks: Sequence[str], *, level: float,
              seed: int, neutral: int, target: int) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """Estimates and figure series for a sweep. Names: <task>_slope_pp (strict judge),
    <task>_slope_pp_lenient, <task>_effect_pp (setting `target` against setting `neutral`, by
    index), <task>_rate_neutral."""
    estimates: dict[str, Estimate] = {}
    values: dict[str, Any] = {"alphas": list(map(float, alphas)), "series": {}}
    i, j = neutral, target
    for task in tasks:
        for judge in JUDGES:
            M = matrix(records, task, judge)
            suffix = "" if judge == "strict" else f"_{judge}"
            found = {f"{task}_slope_pp{suffix}": slope_pp(alphas, M, level, seed)}
            values["series"][f"{task}{suffix}"] = series(alphas, M, records, task, judge, level)
            if judge == "strict":
                found[f"{task}_effect_pp"] = effect_pp(M, i, j, level, seed)
                found[f"{task}_rate_neutral"] = rate(M[:, i], level, "items")
                values[f"{task}_parse_failures"] = int(np.isnan(M).sum())
            estimates.update({k: v for k, v in found.items() if v is not None})
            values.setdefault("not_estimable", []).extend(k for k, v in found.items() if v is None)
    if "compliance" in tasks:
        values["judge_agreement"] = judge_agreement(records)
        if "llm" in records[0]["compliance"]:
            M = matrix(records, "compliance", "llm")
            llm_slope = slope_pp(alphas, M, level, seed)
            if llm_slope is not None:
                estimates["compliance_slope_pp_llm"] = llm_slope
        values["sweep"] = values["series"]["compliance"]
        strict, lenient = estimates.get("compliance_slope_pp"), estimates.get("compliance_slope_pp_lenient")
        values["judges_agree_on_sign"] = bool(strict and lenient and _sign(strict) == _sign(lenient))
    return estimates, values


def judge_agreement(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """How often the judges classify a compliance generation alike, pooled over settings."""
    from pipeline.steering.judges import agreement

    pooled = {j: [o for r in records for o in r["compliance"].get(j, [])] for j in (*JUDGES, "llm")}
    out = {"strict_vs_lenient": agreement(pooled["strict"], pooled["lenient"])}
    if pooled["llm"]:
        out["strict_vs_llm"] = agreement(pooled["strict"], pooled["llm"])
        out["lenient_vs_llm"] = agreement(pooled["lenient"], pooled["llm"])
    return out


def _sign(est: Estimate) -> int:
    """+1 / -1 when the interval excludes zero, 0 when it does not."""
    low, high = est.ci
    return 1 if low > 0 else -1 if high < 0 else 0
