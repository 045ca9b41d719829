"""The numbers a claim's card, page and table lead with, read from its results (nothing computed).

A claim is judged on one quantity. For an effect claim, and for most nulls, that is its metric.
A null may instead be judged on another field: `hneuron-probe-auroc` reports the probe's AUROC
(0.97) but asserts a null about its *paired gain* over the strongest baseline (-0.01); its power's
MDE and its control assertion read `control.gain_over_strongest_ci`. `judged(record)` finds that
field (the MDE's, else the null assertion's interval field), so that the big number a reader sees
is the one the verdict is about, labelled as the chart labels it.

`control_readings(record)` gives what a control is judged by when it has no single value (the
fields its assertion reads), so that its box never reads "no verified value" beside "holds".

`engine_extras(record)` reads the fields the engine may add to an outcome (baselines, control
balance, draws and sidedness, a control's role, a headline's waiver) into plain dicts, and
gives empty ones when they are absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from site_build.common.figures.data import ClaimData, FigureDataError, words

#: d3 formats a figure's axis may use, as Python format specs (no '~').
_ROLE_WORDS = {"negative": "negative control: to be beaten", "positive": "positive control: to be detected"}


@dataclass(frozen=True)
class Reading:
    """One number as shown: its label, value, interval and the format to print them in."""

    field: str
    label: str
    value: float | None
    ci: list[float] | None
    level: float | None
    n: int | None
    unit: str
    fmt: str
    is_metric: bool  # the claim's own metric (no bridge needed)
    figure_row: str = ""  # the chart row that draws it, when one does

    def data(self) -> dict[str, Any]:
        return {"field": self.field, "label": self.label, "value": self.value, "ci": self.ci, "level": self.level,
                "n": self.n, "unit": self.unit, "fmt": self.fmt, "is_metric": self.is_metric,
                "figure_row": self.figure_row}


def _panels(record: Any) -> list[dict[str, Any]]:
    from site_build.common.figures import chosen

    try:
        return chosen(record)
    except Exception:  # noqa: BLE001  a malformed figure is reported by the figure build, not here
        return []


def _row_of(record: Any, path: str) -> tuple[str, str, str | None]:
    """(row label, axis label, d3 format) of the chart row that draws `path`, else ("", "", None)."""
    for panel in _panels(record):
        for row in panel.get("rows") or []:
            field = row if isinstance(row, str) else row.get("field")
            if field == path:
                x = panel.get("x") or {}
                label = row.get("label", "") if isinstance(row, dict) else ""
                return label or words(path), x.get("label", ""), x.get("format")
    return "", "", None


def _python_format(d3: str | None, fallback: str) -> str:
    if not d3:
        return fallback
    return d3.replace("~", "")


def _reading(record: Any, claim: ClaimData, path: str) -> Reading | None:
    try:
        iv = claim.interval(path)
    except FigureDataError:
        return None
    metric = record.spec.metric
    is_metric = path in (metric, f"control.{metric}")
    row, axis_label, d3 = _row_of(record, path)
    if is_metric:
        label = words(path) if path.startswith("control.") else (record.spec.axis.label if record.spec.axis else words(path))
    elif row and axis_label:
        label = f"{axis_label}: {row}"
    else:
        label = row or words(path)
    role, name = ("control", path.removeprefix("control.")) if path.startswith("control.") else ("main", path)
    result = record.result(role)
    est = result.estimates.get(name) if result is not None else None
    fmt = record.value_format if is_metric else _python_format(d3, ".3g")
    ci = [iv.low, iv.high] if iv.has_ci else None
    return Reading(path, label, iv.value, ci, est.level if est else record.outcome.level,
                   est.n if est else None, est.unit if est else "", fmt, is_metric, row)


def _interval_fields(expr: str | None) -> list[str]:
    """The fields an expression reads through their interval (x_ci[0] -> x), in order."""
    from claims.expr import referenced

    if not expr:
        return []
    try:
        names = referenced(expr)
    except SyntaxError:
        return []
    return [n.removesuffix("_ci") for n in names if n.endswith("_ci")]


def judged(record: Any) -> Reading | None:
    """The quantity a null claim is judged on when it is not its metric (else None: the metric)."""
    o = record.outcome
    if o.expect != "null" or record.result("main") is None:
        return None
    spec = record.spec
    candidates: list[str] = []
    if spec.power is not None and getattr(spec.power, "mde", None):
        candidates += _interval_fields(spec.power.mde)
    control = spec.control_spec
    if control is not None:
        candidates += _interval_fields(control.assert_)
    candidates += _interval_fields(spec.assert_)
    claim = ClaimData(record)
    for path in candidates:
        if path in (spec.metric,):
            return None
        reading = _reading(record, claim, path)
        if reading is not None:
            return reading
    return None


def control_readings(record: Any) -> list[Reading]:
    """What a control's assertion reads, for a control that has no single value to show."""
    control = record.spec.control_spec
    if control is None or not control.assert_ or record.result("control") is None:
        return []
    if (record.outcome.control or {}).get("value") is not None:
        return []
    from claims.expr import referenced

    try:
        names = referenced(control.assert_)
    except SyntaxError:
        return []
    claim, out, seen = ClaimData(record), [], set()
    for name in names:
        if not name.startswith("control."):
            continue
        path = name.removesuffix("_ci").removesuffix("_n").removesuffix("_level")
        if path in seen:
            continue
        seen.add(path)
        reading = _reading(record, claim, path)
        if reading is not None:
            out.append(reading)
    return out


def metric_reading(record: Any) -> Reading:
    """The claim's own metric, as the outcome reports it."""
    o = record.outcome
    return Reading(o.metric, words(o.metric), o.value, o.ci, o.level, o.n, o.unit, record.value_format, True)


def lead(record: Any) -> Reading:
    """The number a card, a page and the claims table lead with: the judged quantity of a null
    that is not judged on its metric, else the metric."""
    return judged(record) or metric_reading(record)


# ---- fields the engine may add to an outcome ---------------------------------------------------
def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _balance_rows(balance: Any) -> list[dict[str, Any]]:
    """A control's balance as rows {covariate, achieved, tolerance, ok}: from a mapping
    covariate -> {achieved, tolerance, ok} (or -> achieved), or from a list of such rows."""
    rows: list[dict[str, Any]] = []
    if isinstance(balance, dict):
        items = balance.get("covariates", balance) if isinstance(balance.get("covariates"), dict | list) else balance
        if isinstance(items, list):
            return _balance_rows(items)
        for name, v in items.items():
            if isinstance(v, dict):
                rows.append({"covariate": name, "achieved": _get(v, "achieved") if _get(v, "achieved") is not None
                             else _get(v, "value"), "tolerance": _get(v, "tolerance"), "ok": _get(v, "ok")})
            else:
                rows.append({"covariate": name, "achieved": v, "tolerance": None, "ok": None})
    elif isinstance(balance, list):
        for v in balance:
            if isinstance(v, dict):
                rows.append({"covariate": v.get("covariate") or v.get("name", ""),
                             "achieved": v.get("achieved", v.get("value")), "tolerance": v.get("tolerance"),
                             "ok": v.get("ok")})
    return rows


def _baselines(value: Any, verdict: str = "") -> dict[str, Any]:
    """The strongest baseline as {strongest, difference, ci, level, beats, verdict, count}, from the
    engine's list of baselines (each: label, value, difference, ci, beats, strongest)."""
    if not value:
        return {}
    listed = value if isinstance(value, list) else [value]
    listed = [b for b in listed if isinstance(b, dict)]
    if not listed:
        return {}
    chosen = next((b for b in listed if b.get("strongest")), None)
    if chosen is None:  # the strongest is the one the claim beats by least
        scored = [b for b in listed if isinstance(b.get("difference"), int | float)]
        chosen = min(scored, key=lambda b: b["difference"]) if scored else listed[0]
    ci = chosen.get("ci") or chosen.get("difference_ci")
    beats = chosen.get("beats")
    words_ = verdict or chosen.get("verdict") or {True: "beats the strongest baseline",
                                                  False: "does not beat the strongest baseline"}.get(beats, "")
    return {"strongest": str(chosen.get("label") or chosen.get("name") or ""), "difference": chosen.get("difference"),
            "ci": list(ci) if ci else None, "level": chosen.get("level"), "beats": beats, "verdict": words_,
            "count": len(listed)}


def _waiver(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {"why": str(value.get("why") or value.get("reason") or ""), "by": str(value.get("by") or ""),
                "date": str(value.get("date") or "")}
    return {"why": str(value), "by": "", "date": ""}


def engine_extras(record: Any) -> dict[str, Any]:
    """Baselines, balance, draws, sidedness, role and waiver, each empty when the engine gives none
    (claims.verify.Outcome: baselines, baseline_verdict, balance, rank, waiver; control.role)."""
    o = record.outcome
    control = o.control or {}
    rank = _get(o, "rank") or {}
    role = control.get("role") or ""
    draws = rank.get("draws") if isinstance(rank, dict) else None
    draws = draws if draws is not None else control.get("draws")
    sided = rank.get("sided") if isinstance(rank, dict) else None
    return {
        "baselines": _baselines(_get(o, "baselines"), _get(o, "baseline_verdict") or ""),
        "balance": _balance_rows(_get(o, "balance") or control.get("balance")),
        "draws": draws if isinstance(draws, int) else None,
        "sided": f"{sided}-sided" if sided else "",
        "role": role,
        "role_text": _ROLE_WORDS.get(role, role),
        "waiver": _waiver(_get(o, "waiver")),
    }
