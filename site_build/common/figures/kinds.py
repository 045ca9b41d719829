"""The kinds of chart a claim can ask for (claims/figure.py says what each draws), as Altair charts.

Each kind is `fn(claim: ClaimData, panel: dict, width: int) -> (chart, alt text, caption)`,
registered with `@kind("name")` (a name registered twice is an error). `width` is the whole SVG's
width: every chart is drawn twice, wide for screens and print, narrow for phones, with the same
text sizes, so that the narrow one shown at its own size keeps text at 12 px.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

from site_build.common.figures.data import ClaimData, FigureDataError, Line, number, panel_axis, words
from site_build.common.figures.labels import (
    BAND,
    CHAR_W,
    FONT_SIZE,
    Label,
    band_rect,
    label_layers,
    padded,
    place,
    rule_layers,
    strip_height,
    x_reference_layers,
    y_reference_layers,
)

KindFn = Callable[[ClaimData, dict[str, Any], int], tuple[Any, str, str]]
KINDS: dict[str, KindFn] = {}
CLAIM, CONTROL = "#1f4e8c", "#8a8f98"
TITLE_SIZE = 13
NARROW = 400  # below this width a chart gets fewer ticks and bins


def kind(name: str) -> Callable[[KindFn], KindFn]:
    def register(fn: KindFn) -> KindFn:
        if name in KINDS:
            raise ValueError(f"figure kind {name!r} is registered twice ({KINDS[name].__name__} and {fn.__name__})")
        KINDS[name] = fn
        return fn

    return register


# ---- shared pieces ------------------------------------------------------------------------
def wrap(text: str, width: int, size: int = TITLE_SIZE) -> list[str]:
    """Lines of at most the chart's width (about 0.58 em per character), so that nothing is clipped."""
    return textwrap.wrap(text, max(12, int(width / (0.58 * size)))) or [""]


def axis(title: str, fmt: str | None, width: int, **extra: Any) -> Any:
    import altair as alt

    kwargs: dict[str, Any] = {"title": wrap(title, width - 40, FONT_SIZE), "labelOverlap": "greedy",
                              "labelSeparation": 6, "labelFlush": True, "tickCount": 4 if width < NARROW else 6}
    if fmt:
        kwargs["format"] = fmt
    return alt.Axis(**{**kwargs, **extra})


def finish(layers: list[Any], width: int, height: int, title: list[str] | None, subtitle: list[str]) -> Any:
    """Layers as one chart of the given total width, text sizes fixed, titles wrapped."""
    import altair as alt

    chart = alt.layer(*layers).properties(width=width, height=height,
                                           autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    if title or subtitle:
        chart = chart.properties(title=alt.TitleParams(text=title or [""], subtitle=subtitle or alt.Undefined,
                                                       anchor="start", fontSize=TITLE_SIZE, subtitleFontSize=FONT_SIZE,
                                                       subtitleColor="#4a525c", offset=8))
    return (chart.configure(font="DejaVu Sans, Helvetica, Arial, sans-serif")
            .configure_axis(labelFontSize=FONT_SIZE, titleFontSize=FONT_SIZE, titleFontWeight="normal",
                            labelColor="#1d232b", titleColor="#1d232b", gridColor="#eceff3", domainColor="#8a8f98",
                            tickColor="#8a8f98")
            .configure_legend(labelFontSize=FONT_SIZE, orient="top", direction="horizontal", title=None,
                              labelLimit=width - 30, columns=1 if width < NARROW else 0, symbolSize=80)
            .configure_text(fontSize=FONT_SIZE)
            .configure_view(stroke=None))


def titles(panel: dict[str, Any], width: int, subtitle: list[str]) -> tuple[list[str] | None, list[str]]:
    title = wrap(panel["title"], width) if panel.get("title") else None
    return title, [line for s in subtitle for line in wrap(s, width, FONT_SIZE)]


def references(claim: ClaimData, panel: dict[str, Any], paths: list[str], fmt: str | None,
               value_axis: str) -> dict[str, list[Line]]:
    """Lines per axis: the assertions' thresholds on the drawn fields, then the spec's own lines."""
    lines: dict[str, list[Line]] = {"x": [], "y": []}
    lines[value_axis] = claim.thresholds(paths, fmt)
    for ref in panel.get("reference") or []:
        target = ref.get("axis") or value_axis
        existing = [line for line in lines.setdefault(target, []) if line.value != ref["value"]]
        lines[target] = [*existing, Line(float(ref["value"]), ref.get("label") or number(ref["value"], fmt))]
    return lines


def legend_color(domain: list[str], colors: list[str], symbol: str = "circle") -> Any:
    import altair as alt

    return alt.Color("series:N", scale=alt.Scale(domain=domain, range=colors),
                     legend=alt.Legend(title=None, symbolType=symbol, symbolStrokeWidth=2.5))


# ---- intervals ----------------------------------------------------------------------------
def _rows(claim: ClaimData, panel: dict[str, Any]) -> list[dict[str, Any]]:
    rows = panel.get("rows") or []
    if not rows:
        metric = claim.spec.metric
        rows = [{"field": metric, "label": "this claim"}]
        if claim.spec.control_spec is not None and claim.has(f"control.{metric}"):
            rows.append({"field": f"control.{metric}", "label": "control"})
    return [{"field": r, "label": ""} if isinstance(r, str) else dict(r) for r in rows]


@kind("intervals")
def intervals(claim: ClaimData, panel: dict[str, Any], width: int) -> tuple[Any, str, str]:
    import altair as alt

    rows, dots = [], []
    for row in _rows(claim, panel):
        iv = claim.interval(row["field"])
        if iv.value is None and not iv.has_ci:
            raise FigureDataError(f"{claim.where}: {row['field']} has neither a value nor an interval")
        label = row.get("label") or words(row["field"])
        value = iv.value if iv.value is not None else (iv.low + iv.high) / 2
        rows.append({"row": label, "value": value, "low": iv.low if iv.has_ci else value,
                     "high": iv.high if iv.has_ci else value, "tested": claim.tested(row["field"]),
                     "field": row["field"]})
        if row.get("points"):
            dots += [{"row": label, "value": v} for v in claim.numbers(row["points"]) if v is not None]
    if len({r["row"] for r in rows}) != len(rows):
        raise FigureDataError(f"{claim.where}: two rows of the chart have the same label")
    paths = [r["field"] for r in rows]
    title, fmt = claim.axis(panel.get("x"), words(paths[0]), paths[0])
    null = claim.null_range()
    lines = references(claim, panel, paths, fmt, "x")
    if null:  # the band's edges are the thresholds of an equivalence test: drawn once, as the band
        lines["x"] = [line for line in lines["x"] if not any(abs(line.value - e) < 1e-12 for e in null[:2])]
    # row labels wrap onto lines (never cut): about 17 characters on a phone, 28 on a screen
    chars = 17 if width < NARROW else 28
    for r in rows:
        r["key"] = "\n".join(textwrap.wrap(r["row"], chars, break_on_hyphens=False)) or r["row"]
    lines_per_row = max(r["key"].count("\n") + 1 for r in rows)
    step = max(34, 15 * lines_per_row + 8)
    low, high = padded([v for r in rows for v in (r["low"], r["high"])] + [line.value for line in lines["x"]]
                       + (list(null[:2]) if null else []))
    label_col = min(chars, max(len(line) for r in rows for line in r["key"].split("\n"))) * CHAR_W + 14
    labels = ([Label(null[0], null[2])] if null else []) + [Label(line.value, line.label) for line in lines["x"]]
    top = strip_height(place(labels, low, high, width - label_col - 12))
    height = top + step * len(rows) + 6
    y = alt.Y("key:N", sort=[r["key"] for r in rows], title=None,
              scale=alt.Scale(range=[top + 6, height], paddingInner=0.2, paddingOuter=0.3),
              axis=alt.Axis(labelLimit=0, labelFontSize=FONT_SIZE, ticks=False, domain=False, labelBaseline="middle",
                            labelLineHeight=15, labelExpr="split(datum.value, '\\n')",
                            labelOffset=alt.ExprRef("-7.5 * (length(split(datum.value, '\\n')) - 1)")))
    x_axis = axis(title, fmt, width)
    x_scale = alt.Scale(domain=[low, high], nice=False, zero=False)
    for r in rows:
        r["colour"] = CLAIM if r["tested"] or len(rows) == 1 else CONTROL
    layers: list[Any] = []
    if null:
        layers += band_rect(null[0], null[1], top)
    layers += rule_layers(lines["x"], top)
    layers += label_layers(labels)
    base = alt.Chart(alt.Data(values=rows))
    colour = alt.Color("colour:N", scale=None, legend=None)
    layers.append(base.mark_rule(strokeWidth=3).encode(y=y, x=alt.X("low:Q", axis=x_axis, scale=x_scale),
                                                        x2="high:Q", color=colour))
    if dots:
        keys = {r["row"]: r["key"] for r in rows}
        for d in dots:
            d["key"] = keys[d["row"]]
        layers.append(alt.Chart(alt.Data(values=dots)).mark_circle(size=28, opacity=0.55, color=CONTROL).encode(
            y=y, x="value:Q"))
    layers.append(base.mark_point(filled=True, size=90, opacity=1).encode(y=y, x="value:Q", color=colour))
    level = f"{claim.outcome.level:.0%} " if claim.outcome.level else ""
    alt_text = f"{title}, point estimates with {level}intervals: " + "; ".join(
        f"{r['row']} {number(r['value'], fmt)} ({number(r['low'], fmt)} to {number(r['high'], fmt)})" for r in rows)
    caption = ((f"Dots are point estimates, bars their {level}intervals" if len(rows) > 1 else
                f"The dot is the point estimate, the bar its {level}interval")
               + ("; blue rows are the ones the assertion tests" if any(r["tested"] for r in rows) and len(rows) > 1 else "")
               + (f"; the shaded band is the {null[2]} the null is judged against" if null else "")
               + ("; dashed lines are the assertion's thresholds" if lines["x"] else "")
               + ("; small dots are the single splits" if dots else "") + ".")
    t, s = titles(panel, width, [])
    return finish(layers, width, height, t, s), alt_text, caption


# ---- rank -----------------------------------------------------------------------------------
def dot_stack(values: list[float], low: float, high: float, bins: int) -> tuple[list[dict[str, float]], int]:
    """A Wilkinson dot plot: each value at its bin's centre, stacked; returns the dots and the
    highest stack."""
    step = (high - low) / bins if high > low else 1.0
    counts: dict[int, int] = {}
    dots = []
    for v in sorted(values):
        b = min(bins - 1, max(0, int((v - low) / step)))
        counts[b] = counts.get(b, 0) + 1
        dots.append({"x": low + (b + 0.5) * step, "stack": counts[b], "draw": v})
    return dots, max(counts.values(), default=1)


@kind("rank")
def rank(claim: ClaimData, panel: dict[str, Any], width: int) -> tuple[Any, str, str]:
    import altair as alt

    draws = claim.numbers(panel["draws"])
    valid = [d for d in draws if d is not None]
    broken = len(draws) - len(valid)
    value_path = panel.get("value") or claim.spec.metric
    iv = claim.interval(value_path)
    if iv.value is None:
        raise FigureDataError(f"{claim.where}: {value_path} has no value to rank")
    p_path = panel.get("p") or ("control.rank_p" if claim.has("control.rank_p") else None)
    p = claim.field(p_path) if p_path else None
    title, fmt = claim.axis(panel.get("x"), words(value_path), value_path)
    lines = references(claim, panel, [value_path], fmt, "x")
    span = [*valid, iv.value, *([iv.low, iv.high] if iv.has_ci else []), *(line.value for line in lines["x"])]
    low, high = min(span), max(span)
    pad = (high - low) * 0.04 or abs(high) * 0.05 or 0.05
    bins = 18 if width < NARROW else 32
    dots, tallest = dot_stack(valid, low - pad, high + pad, bins)
    plot_width = width - 20
    diameter = max(4.0, min(plot_width / bins * 0.9, 150 / max(tallest, 1)))
    group = f"{len(draws)} {panel.get('label') or 'random draws'}"
    you = panel.get("value_label") or "this claim"
    null = claim.null_range(valid)
    labels = ([Label(null[0], null[2])] if null else []) + [Label(line.value, line.label) for line in lines["x"]]
    labels.append(Label(iv.value, f"{you} {number(iv.value, fmt)}", CLAIM, bold=True))
    top = strip_height(place(labels, low - pad, high + pad, plot_width))
    height = int(max(80, top + diameter * (tallest + 0.4) + 10))
    colour = legend_color([group], [CONTROL])
    x = alt.X("x:Q", axis=axis(title, fmt, width), scale=alt.Scale(zero=False, domain=[low - pad, high + pad], nice=False))
    layers: list[Any] = []
    if null:
        layers += band_rect(null[0], null[1], top)
    if iv.has_ci:
        ci = alt.Chart(alt.Data(values=[{"low": iv.low, "high": iv.high}]))
        layers.append(ci.mark_rect(color=CLAIM, opacity=0.16).encode(x="low:Q", x2="high:Q", y=alt.value(top),
                                                                     y2=alt.value("height")))
    layers += rule_layers(lines["x"], top)
    for d in dots:
        d["series"] = group
    stack_top = tallest + 0.4 + top / diameter  # the strip is left empty of dots
    layers.append(alt.Chart(alt.Data(values=dots)).mark_circle(size=diameter ** 2 * 0.78, opacity=0.8).encode(
        x=x, y=alt.Y("stack:Q", axis=None, scale=alt.Scale(domain=[0, stack_top], nice=False)), color=colour))
    mark = alt.Chart(alt.Data(values=[{"x": iv.value}]))
    layers.append(mark.mark_rule(strokeWidth=2.5, color=CLAIM).encode(x="x:Q", y=alt.value(top), y2=alt.value("height")))
    layers += label_layers(labels)
    sub = []
    if p is not None:
        sub.append(f"rank p = {number(float(p), '.3f')}; control: {claim.outcome.verdict}")
    if broken:
        sub.append(f"{broken} of {len(draws)} draws broke the model's answers (not drawn; counted against the claim)")
    t, s = titles(panel, width, sub)
    alt_text = (f"{title}: {len(valid)} {panel.get('label') or 'random draws'} as dots from {number(min(valid), fmt)} "
                f"to {number(max(valid), fmt)}; {you} at {number(iv.value, fmt)}"
                + (f"; rank p = {number(float(p), '.3f')}" if p is not None else ""))
    caption = (f"Each grey dot is one of the {group}; the blue line is {you}"
               + (", its interval shaded" if iv.has_ci else "")
               + (f"; the grey band is the {null[2]} the null is judged against" if null else "")
               + ("; dashed lines are the assertion's thresholds" if lines["x"] else "")
               + ". The rank p counts the draws at least as far as the claim (broken draws included).")
    return finish(layers, width, height, t, s), alt_text, caption


# ---- sweep ----------------------------------------------------------------------------------
def _points(claim: ClaimData, series: Any, x_key: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(series, list) or not series:
        raise FigureDataError(f"{claim.where}: {where} is not a non-empty list of points")
    for i, point in enumerate(series):
        if not isinstance(point, dict) or point.get(x_key) is None or point.get("value") is None:
            raise FigureDataError(f"{claim.where}: {where}[{i}] lacks {x_key} or value")
    return series


def _control_series(claim: ClaimData, panel: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    path = panel.get("controls")
    if path is None:
        path = next((p for p in ("control.sweeps", "control.sweep") if claim.has(p)), None)
    if path is None:
        return {}
    data = claim.field(path)
    x_key = panel.get("x_key", "alpha")
    if isinstance(data, dict):
        return {str(k): _points(claim, v, x_key, f"{path}.{k}") for k, v in data.items() if v}
    if isinstance(data, list) and data and isinstance(data[0], list):
        return {str(i): _points(claim, s, x_key, f"{path}[{i}]") for i, s in enumerate(data) if s}
    return {"control": _points(claim, data, x_key, path)}


@kind("sweep")
def sweep(claim: ClaimData, panel: dict[str, Any], width: int) -> tuple[Any, str, str]:
    import altair as alt

    x_key = panel.get("x_key", "alpha")
    path = panel.get("series", "sweep")
    main = _points(claim, claim.field(path), x_key, path)
    controls = _control_series(claim, panel)
    every = [p["value"] for p in main] + [p["value"] for s in controls.values() for p in s]
    every += [p[k] for p in main for k in ("ci_low", "ci_high") if p.get(k) is not None]
    sweep_label = str(claim.field("sweep_label")) if claim.has("sweep_label") else "value"
    y_title, y_fmt = panel_axis(panel.get("y"), sweep_label, ".0%" if all(0 <= v <= 1 for v in every) else None)
    x_title, x_fmt = panel_axis(panel.get("x"), x_key)
    you = panel.get("value_label") or "this claim"
    group = (f"{len(controls)} {panel.get('label') or 'control series'}" if len(controls) > 1
             else panel.get("label") or "control")
    rows = [{"x": p[x_key], "value": p["value"], "low": p.get("ci_low"), "high": p.get("ci_high"), "series": you,
             "line": "claim"} for p in main]
    for name, series in controls.items():
        rows += [{"x": p[x_key], "value": p["value"], "series": group, "line": f"control {name}"} for p in series]
    colour = legend_color([you, group] if controls else [you], [CLAIM, CONTROL] if controls else [CLAIM], "stroke")
    x = alt.X("x:Q", axis=axis(x_title, x_fmt, width), scale=alt.Scale(zero=False, nice=False))
    y = alt.Y("value:Q", axis=axis(y_title, y_fmt, width), scale=alt.Scale(zero=False))
    layers: list[Any] = []
    if claim.outcome.expect == "null" and controls:
        by_x: dict[float, list[float]] = {}
        for series in controls.values():
            for p in series:
                by_x.setdefault(p[x_key], []).append(p["value"])
        envelope = [{"x": k, "low": min(v), "high": max(v)} for k, v in sorted(by_x.items())]
        layers.append(alt.Chart(alt.Data(values=envelope)).mark_area(color=BAND, opacity=0.9).encode(
            x="x:Q", y="low:Q", y2="high:Q"))
    lines = references(claim, panel, [], y_fmt, "y")
    layers += y_reference_layers(lines.get("y", [])) + x_reference_layers(
        lines.get("x", []), [r["x"] for r in rows], width - 60)
    base = alt.Chart(alt.Data(values=rows))
    if all(r["low"] is not None and r["high"] is not None for r in rows if r["line"] == "claim"):
        layers.append(base.transform_filter(alt.datum.line == "claim").mark_area(color=CLAIM, opacity=0.15).encode(
            x=x, y="low:Q", y2="high:Q"))
    if controls:
        layers.append(base.transform_filter(alt.datum.line != "claim").mark_line(strokeWidth=1.2, opacity=0.55).encode(
            x=x, y=y, color=colour, detail="line:N"))
    layers.append(base.transform_filter(alt.datum.line == "claim").mark_line(point=True, strokeWidth=2.5).encode(
        x=x, y=y, color=colour))
    t, s = titles(panel, width, [])
    alt_text = (f"{y_title} against {x_title}: {you} " + ", ".join(
        f"{number(p[x_key], x_fmt)}: {number(p['value'], y_fmt)}" for p in main)
                + (f"; against {group}" if controls else ""))
    caption = (f"The blue line is {you}" + (", its interval shaded" if any(r["low"] is not None for r in rows) else "")
               + (f"; each grey line is one of the {group}" if len(controls) > 1 else
                  f"; the grey line is the {group}" if controls else "")
               + ("; the grey band is the control range the null is judged against"
                  if claim.outcome.expect == "null" and controls else "") + ".")
    return finish(layers, width, 220 if width < NARROW else 260, t, s), alt_text, caption


# ---- scatter ----------------------------------------------------------------------------------
@kind("scatter")
def scatter(claim: ClaimData, panel: dict[str, Any], width: int) -> tuple[Any, str, str]:
    import altair as alt

    xk, yk, lk = panel.get("x_key", "detection"), panel.get("y_key", "steering"), panel.get("label_key", "method")
    path = panel.get("points", "methods")
    table = claim.field(path)
    if not isinstance(table, list) or not table:
        raise FigureDataError(f"{claim.where}: {path} is not a non-empty list of rows")
    rows = []
    for i, row in enumerate(table):
        missing = [k for k in (lk, xk, yk) if not isinstance(row, dict) or row.get(k) is None]
        if missing:
            raise FigureDataError(f"{claim.where}: {path}[{i}] lacks {', '.join(missing)}")
        rows.append({"label": str(row[lk]), "x": row[xk], "y": row[yk],
                     "x_low": row.get(f"{xk}_ci_low", row[xk]), "x_high": row.get(f"{xk}_ci_high", row[xk]),
                     "y_low": row.get(f"{yk}_ci_low", row[yk]), "y_high": row.get(f"{yk}_ci_high", row[yk])})
    x_title, x_fmt = panel_axis(panel.get("x"), words(xk))
    y_title, y_fmt = panel_axis(panel.get("y"), words(yk))
    x = alt.X("x:Q", axis=axis(x_title, x_fmt, width), scale=alt.Scale(zero=False))
    y = alt.Y("y:Q", axis=axis(y_title, y_fmt, width), scale=alt.Scale(zero=False))
    lines = references(claim, panel, [], None, "y")
    layers = x_reference_layers(lines.get("x", []), [v for r in rows for v in (r["x_low"], r["x_high"])],
                                width - 60) + y_reference_layers(lines.get("y", []))
    base = alt.Chart(alt.Data(values=rows))
    layers += [base.mark_rule(color=CONTROL, strokeWidth=1.5).encode(x="x_low:Q", x2="x_high:Q", y=y),
               base.mark_rule(color=CONTROL, strokeWidth=1.5).encode(y="y_low:Q", y2="y_high:Q", x=x),
               base.mark_point(filled=True, size=80, color=CLAIM, opacity=1).encode(x=x, y=y)]
    xs = [v for r in rows for v in (r["x_low"], r["x_high"])] + [line.value for line in lines.get("x", [])]
    middle = (min(xs) + max(xs)) / 2
    for side in ("left", "right"):  # a label on the side with room, so that none runs off the chart
        chosen = [r for r in rows if (r["x"] <= middle) == (side == "left")]
        if chosen:
            layers.append(alt.Chart(alt.Data(values=chosen)).mark_text(
                align=side, dx=7 if side == "left" else -7, dy=-8, color="#1d232b").encode(x=x, y=y, text="label:N"))
    t, s = titles(panel, width, [])
    alt_text = f"{x_title} against {y_title}: " + "; ".join(
        f"{r['label']} {number(r['x'], x_fmt)}, {number(r['y'], y_fmt)}" for r in rows)
    caption = "Each point is one row with its interval on both axes" + (
        "; dashed lines are references" if any(lines.values()) else "") + "."
    return finish(layers, width, 240 if width < NARROW else 300, t, s), alt_text, caption
