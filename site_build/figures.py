"""Charts for claims, by name: a spec's `figure: <name>` picks one; rendered to static SVG.

Each figure is a function `(outcome, main_result, control_result) -> altair.Chart`, registered
with `@figure("name")` (a name registered twice is an error). `outcome` is the claim's
`claims.verify.Outcome`; the results are `claims.result.Result` objects (control_result is None
without a control). The `values` each figure reads:

  estimate_vs_control   nothing: the outcome's value and CI beside the control's (the default
                        for a claim without a `figure`; without a control it shows the estimate)
  alpha_sweep           main_result.values["sweep"]: [{alpha, value, ci_low, ci_high}, ...]
                        (ci_low/ci_high optional), values["sweep_label"] the y-axis title;
                        optionally control_result.values["sweep"] (one series, same shape) or
                        control_result.values["sweeps"]: [[{alpha, value, ...}, ...], ...] or
                        {label: [{alpha, value, ...}, ...]} (e.g. one per random seed)
  detection_vs_steering main_result.values["methods"]: [{method, detection, detection_ci_low,
                        detection_ci_high, steering, steering_ci_low, steering_ci_high}, ...]

A figure that cannot find its data raises FigureDataError, which the build reports as a warning
naming the claim (an error under --strict). Charts go to SVG with vl-convert: no JavaScript, no
CDN, nothing fetched when a page is read.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from claims.errors import BuildError

FigureFn = Callable[[Any, Any, Any], Any]
FIGURES: dict[str, FigureFn] = {}
DEFAULT = "estimate_vs_control"
WIDTH = 440
CLAIM_COLOR, CONTROL_COLOR = "#1f4e8c", "#8a8f98"


class FigureDataError(BuildError):
    """A figure's data is missing or malformed in the result."""


def figure(name: str) -> Callable[[FigureFn], FigureFn]:
    def register(fn: FigureFn) -> FigureFn:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is registered twice ({FIGURES[name].__name__} and {fn.__name__})")
        FIGURES[name] = fn
        return fn

    return register


def chosen(outcome: Any) -> str | None:
    """The figure a claim shows: its own, else the default for claims with an interval."""
    if outcome.figure:
        return outcome.figure
    return DEFAULT if outcome.ci is not None else None


def code_hash() -> str:
    """Hash of this module's source: a change to a chart re-renders every chart."""
    return hashlib.sha256(inspect.getsource(inspect.getmodule(code_hash)).encode()).hexdigest()


def to_svg(chart: Any) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart.to_json())


def _rows(values: dict[str, Any], key: str, fields: tuple[str, ...], where: str) -> list[dict[str, Any]]:
    rows = values.get(key)
    if not isinstance(rows, list) or not rows:
        raise FigureDataError(f"{where}: the result has no values[{key!r}] (a list of {{{', '.join(fields)}}})")
    for i, row in enumerate(rows):
        missing = [f for f in fields if not isinstance(row, dict) or row.get(f) is None]
        if missing:
            raise FigureDataError(f"{where}: values[{key!r}][{i}] lacks {', '.join(missing)}")
    return rows


def _label(outcome: Any) -> str:
    return outcome.metric.replace("_", " ")


@figure("estimate_vs_control")
def estimate_vs_control(outcome: Any, main: Any, control: Any) -> Any:
    import altair as alt

    if outcome.value is None or outcome.ci is None:
        raise FigureDataError(f"claim {outcome.id}: no estimate with an interval to chart")
    rows = [{"arm": "claim", "value": outcome.value, "low": outcome.ci[0], "high": outcome.ci[1]}]
    c = outcome.control
    if c.get("ci") and c.get("value") is not None:
        rows.append({"arm": "control", "value": c["value"], "low": c["ci"][0], "high": c["ci"][1]})
    level = f"{outcome.level:.0%} CI" if outcome.level else "CI"
    base = alt.Chart(alt.Data(values=rows))
    y = alt.Y("arm:N", title=None, sort=["claim", "control"], axis=alt.Axis(labelFontSize=12))
    color = alt.Color("arm:N", scale=alt.Scale(domain=["claim", "control"], range=[CLAIM_COLOR, CONTROL_COLOR]),
                      legend=None)
    bars = base.mark_rule(strokeWidth=3).encode(
        y=y, x=alt.X("low:Q", title=f"{_label(outcome)} ({level})", scale=alt.Scale(zero=False)), x2="high:Q",
        color=color)
    points = base.mark_point(filled=True, size=90).encode(y=y, x="value:Q", color=color)
    return (bars + points).properties(width=WIDTH, height=36 * len(rows), title=outcome.title)


def _sweeps(control: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    if control is None:
        return {}
    values = control.values
    if "sweep" in values:
        return {"control": _rows(values, "sweep", ("alpha", "value"), where + " control")}
    sweeps = values.get("sweeps")
    if isinstance(sweeps, dict):
        return {str(k): _rows(sweeps, k, ("alpha", "value"), where + " control") for k in sweeps}
    if isinstance(sweeps, list):
        return {f"control {i + 1}": _rows({"s": s}, "s", ("alpha", "value"), where + " control")
                for i, s in enumerate(sweeps)}
    return {}


@figure("alpha_sweep")
def alpha_sweep(outcome: Any, main: Any, control: Any) -> Any:
    import altair as alt

    where = f"claim {outcome.id}: figure alpha_sweep"
    if main is None:
        raise FigureDataError(f"{where}: no fresh result")
    rows = [{**r, "series": "selected"} for r in _rows(main.values, "sweep", ("alpha", "value"), where)]
    controls = _sweeps(control, where)
    for label, series in controls.items():
        rows += [{**r, "series": label, "ci_low": None, "ci_high": None} for r in series]
    domain = ["selected", *controls]
    color = alt.Color("series:N", title=None, scale=alt.Scale(
        domain=domain, range=[CLAIM_COLOR] + [CONTROL_COLOR] * len(controls)))
    base = alt.Chart(alt.Data(values=rows))
    x = alt.X("alpha:Q", title="alpha (scale on the selected units)")
    layers = []
    if all(r.get("ci_low") is not None for r in rows if r["series"] == "selected"):
        layers.append(base.transform_filter(alt.datum.series == "selected").mark_area(
            opacity=0.18, color=CLAIM_COLOR).encode(x=x, y="ci_low:Q", y2="ci_high:Q"))
    layers.append(base.mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title=str(main.values.get("sweep_label", "effect")), scale=alt.Scale(zero=False)),
        color=color,
        detail="series:N"))
    return alt.layer(*layers).properties(width=WIDTH, height=260, title=outcome.title)


@figure("detection_vs_steering")
def detection_vs_steering(outcome: Any, main: Any, control: Any) -> Any:
    import altair as alt

    where = f"claim {outcome.id}: figure detection_vs_steering"
    if main is None:
        raise FigureDataError(f"{where}: no fresh result")
    fields = ("method", "detection", "detection_ci_low", "detection_ci_high",
              "steering", "steering_ci_low", "steering_ci_high")
    rows = _rows(main.values, "methods", fields, where)
    base = alt.Chart(alt.Data(values=rows))
    x = alt.X("detection:Q", title="detection (held-out AUROC or accuracy)", scale=alt.Scale(zero=False))
    y = alt.Y("steering:Q", title="steering effect", scale=alt.Scale(zero=False))
    xerr = base.mark_rule(color=CONTROL_COLOR).encode(x="detection_ci_low:Q", x2="detection_ci_high:Q", y=y)
    yerr = base.mark_rule(color=CONTROL_COLOR).encode(y="steering_ci_low:Q", y2="steering_ci_high:Q", x=x)
    points = base.mark_point(filled=True, size=80, color=CLAIM_COLOR).encode(x=x, y=y)
    labels = base.mark_text(align="left", dx=7, dy=-7, fontSize=11).encode(x=x, y=y, text="method:N")
    return (xerr + yerr + points + labels).properties(width=WIDTH, height=300, title=outcome.title)


def render(name: str, outcome: Any, main: Any, control: Any) -> str:
    """The SVG of a named figure; unknown names and missing data raise FigureDataError."""
    fn = FIGURES.get(name)
    if fn is None:
        raise FigureDataError(f"claim {outcome.id}: unknown figure {name!r} (known: {', '.join(sorted(FIGURES))})")
    return to_svg(fn(outcome, main, control))
