"""From per-item outcomes at each setting to estimates.

Each task's outcomes become an (items, settings) matrix of 1 (the rate's numerator: context for
compliance, correct for QA, flipped for pushback, refused for false premises), 0 (the other side)
and NaN (neither: a format failure, or for compliance an answer that is neither the context's nor
the memory's). A rate per setting is the mean over the non-NaN entries: compliance is thus
context / (context + memory), with format failures and other answers reported beside it. For QA
accuracy a format failure counts as a wrong answer (the model did not answer the question).
Intervals resample subject clusters (items about one subject move together), paired across
settings; the slope is in percentage points per unit of alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from claims import Estimate
from pipeline import stats
from pipeline.steering.judges import JUDGES

POSITIVE = {"compliance": "context", "qa": "correct", "pushback": "flipped", "false_premise": "refused",
            "multiple_choice": "context"}
NEGATIVE = {"compliance": "memory", "qa": "wrong", "pushback": "kept", "false_premise": "answered",
            "multiple_choice": "other"}
MIN_PARSED = 5


def indicator(task: str, outcomes: Sequence[str | None]) -> np.ndarray:
    """1 / 0 / NaN per item; for QA a format failure counts as not answered correctly (0)."""
    if task == "qa":
        return np.array([1.0 if o == "correct" else 0.0 for o in outcomes])
    return np.array([1.0 if o == POSITIVE[task] else 0.0 if o == NEGATIVE[task] else np.nan for o in outcomes])


def matrix(records: Sequence[dict[str, Any]], task: str, judge: str = "strict") -> np.ndarray:
    """(items, settings) of 1/0/NaN for one task and judge."""
    return np.stack([indicator(task, r[task][judge]) for r in records], axis=1)


def rates(M: np.ndarray) -> np.ndarray:
    """Per setting, the mean over parsed entries (NaN where none parsed)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(M, axis=0) if M.size else np.full(M.shape[1], np.nan)


def _slope(alphas: np.ndarray, M: np.ndarray) -> float:
    r = rates(M)
    ok = ~np.isnan(r)
    if ok.sum() < 2 or (~np.isnan(M)).sum(axis=0).min() < MIN_PARSED:
        return float("nan")
    return 100 * float(np.polyfit(alphas[ok], r[ok], 1)[0])


def slope_pp(alphas: Sequence[float], M: np.ndarray, clusters: list[np.ndarray], level: float, seed: int
             ) -> Estimate | None:
    """Slope of the rate on alpha (pp per unit), items resampled in subject clusters, paired."""
    a = np.asarray(alphas, dtype=float)
    return stats.cluster_bootstrap(lambda idx: _slope(a, M[idx]), clusters, level=level, seed=seed,
                                   unit="items")


def _effect(M: np.ndarray, i: int, j: int) -> float:
    if min((~np.isnan(M[:, i])).sum(), (~np.isnan(M[:, j])).sum()) < MIN_PARSED:
        return float("nan")
    r = rates(M[:, [i, j]])
    return 100 * float(r[1] - r[0])


def effect_pp(M: np.ndarray, i: int, j: int, clusters: list[np.ndarray], level: float, seed: int) -> Estimate | None:
    """Rate at setting j minus rate at setting i, in percentage points, clusters resampled."""
    return stats.cluster_bootstrap(lambda idx: _effect(M[idx], i, j), clusters, level=level, seed=seed, unit="items")


def rate(column: np.ndarray, level: float, unit: str) -> Estimate:
    parsed = column[~np.isnan(column)]
    return stats.proportion(int(parsed.sum()), len(parsed), level, unit=unit)


def series(alphas: Sequence[float], records: Sequence[dict[str, Any]], task: str, level: float,
           judge: str = "strict") -> list[dict[str, Any]]:
    M = matrix(records, task, judge)
    out = []
    for k, alpha in enumerate(alphas):
        est = rate(M[:, k], level, "items")
        outcomes = records[k][task][judge]
        out.append({"alpha": float(alpha), "value": est.value, "ci_low": est.ci[0] if est.ci else None,
                    "ci_high": est.ci[1] if est.ci else None, "n": est.n,
                    "format_failures": sum(o is None for o in outcomes),
                    "other": sum(o not in (None, POSITIVE[task], NEGATIVE[task]) for o in outcomes),
                    "truncated": sum(f == "length" for f in records[k][task]["finish"])})
    return out


def minimum_detectable(estimate: Estimate | None, power: float, test_alpha: float) -> float | None:
    """The smallest effect this paired design resolves: (z_(1-a/2) + z_power) x the bootstrap
    standard error of the estimate (taken as half its interval over 2 x 1.96 at level 0.95)."""
    from scipy.stats import norm

    if estimate is None or estimate.ci is None:
        return None
    se = (estimate.ci[1] - estimate.ci[0]) / (2 * norm.ppf(0.5 + estimate.level / 2))
    return float((norm.ppf(1 - test_alpha / 2) + norm.ppf(power)) * se)


def summarize(alphas: Sequence[float], records: Sequence[dict[str, Any]], tasks: Sequence[str],
              clusters: dict[str, list[np.ndarray]], *, level: float, seed: int, neutral: int, target: int
              ) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """Estimates and figure series for a sweep. Names: <task>_slope_pp (strict judge),
    <task>_slope_pp_lenient, <task>_effect_pp (setting `target` against `neutral`, by index),
    <task>_rate_neutral, <task>_rate_target; `clusters[task]` groups the task's items by subject."""
    estimates: dict[str, Estimate] = {}
    values: dict[str, Any] = {"alphas": list(map(float, alphas)), "series": {}, "not_estimable": []}
    for task in tasks:
        for judge in [j for j in (*JUDGES, "llm") if j in records[0][task]]:
            M = matrix(records, task, judge)
            suffix = "" if judge == "strict" else f"_{judge}"
            found = {f"{task}_slope_pp{suffix}": slope_pp(alphas, M, clusters[task], level, seed)
                     if len(alphas) > 2 else None,
                     f"{task}_effect_pp{suffix}": effect_pp(M, neutral, target, clusters[task], level, seed)}
            values["series"][f"{task}{suffix}"] = series(alphas, records, task, level, judge)
            if judge == "strict":
                found[f"{task}_rate_neutral"] = rate(M[:, neutral], level, "items")
                found[f"{task}_rate_target"] = rate(M[:, target], level, "items")
                values[f"{task}_format_failures"] = [s["format_failures"] for s in values["series"][task]]
                values[f"{task}_n_items"] = M.shape[0]
            estimates.update({k: v for k, v in found.items() if v is not None and v.value is not None})
            values["not_estimable"] += [k for k, v in found.items() if v is None and "slope" not in k or
                                        (v is None and len(alphas) > 2)]
    if "compliance" in tasks:
        values["sweep"] = values["series"]["compliance"]
        values["sweep_label"] = "compliance: context / (context + memory)"
    return estimates, values


def item_rows(settings: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]],
              rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per-item outcomes to commit (ctx.save_items): one row per setting x task x item, carrying the
    setting's fields (e.g. {"alpha": 2.0}), the item's id, subject cluster and family, the generated
    text, its finish reason and every judge's outcome. records[k] is settings[k]'s score()."""
    out = []
    for setting, record in zip(settings, records, strict=True):
        for task, record_task in record.items():
            judged = [j for j in (*JUDGES, "llm") if j in record_task]
            for i, row in enumerate(rows[task]):
                item = row["item"]
                out.append({**setting, "task": task, "id": item["id"], "cluster": str(row.get("cluster", item["id"])),
                            "family": item.get("family"), "text": record_task["text"][i],
                            "finish": record_task["finish"][i], **{j: record_task[j][i] for j in judged}})
    return out


def records_from_items(items: Sequence[dict[str, Any]], fields: Sequence[str]
                       ) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """item_rows() read back: the settings (tuples of `fields`, in first-seen order), one record per
    setting as score() returns it, and each task's subject clusters (pipeline.stats.clusters_of)."""
    from pipeline.stats import clusters_of

    settings: list[tuple[Any, ...]] = []
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    cluster_ids: dict[str, list[str]] = {}
    first = None
    for r in items:
        key = tuple(r[f] for f in fields)
        if key not in records:
            settings.append(key)
            records[key] = {}
            first = key if first is None else first
        task = records[key].setdefault(r["task"], {"text": [], "finish": [],
                                                  **{j: [] for j in (*JUDGES, "llm") if j in r}})
        task["text"].append(r["text"])
        task["finish"].append(r["finish"])
        for j in (*JUDGES, "llm"):
            if j in r:
                task[j].append(r[j])
        if key == first:
            cluster_ids.setdefault(r["task"], []).append(r["cluster"])
    return settings, [records[k] for k in settings], {t: clusters_of(c) for t, c in cluster_ids.items()}


def cut_off(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per task, the share of generations (over every setting) that hit the token limit."""
    out = {}
    for task in records[0]:
        finishes = [f for r in records for f in r[task]["finish"]]
        out[task] = float(np.mean([f == "length" for f in finishes])) if finishes else 0.0
    return out
