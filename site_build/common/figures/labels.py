"""Labels of the lines a chart draws (thresholds, references, a null's band, the claim's own
value), placed in a strip above the plot where no line, band or dot is drawn: each beside its line
on the side with room, in the first row where it meets no other label. The lines themselves start
under the strip, so that no label is crossed by a line and no two labels overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from site_build.common.figures.data import Line

REFERENCE, BAND = "#57606a", "#dfe6ef"
FONT_SIZE = 12
CHAR_W = 0.62 * FONT_SIZE  # a generous average advance of DejaVu Sans at 12 px
STRIP_ROW = 16  # px per row of line labels in the strip at the top of a chart
GAP = 8  # px kept between two labels of one row


@dataclass
class Label:
    """A label of a line (a threshold, a reference, a band's edge, the claim's own value), placed
    in the strip above the plot, where no line or dot is drawn."""

    value: float
    text: str
    colour: str = REFERENCE
    bold: bool = False
    align: str = "left"
    row: int = 0


def text_width(text: str) -> float:
    return len(text) * CHAR_W + 2


def place(labels: list[Label], low: float, high: float, plot_width: float) -> int:
    """Each label beside its line, on the side with room, in the first strip row where it meets
    no other label; returns the number of rows used."""
    taken: list[list[tuple[float, float]]] = []
    span = (high - low) or 1.0
    for label in labels:
        x, w = (label.value - low) / span * plot_width, text_width(label.text)
        if x + 4 + w <= plot_width or x - 4 - w < 0:
            label.align, box = "left", (x + 4, x + 4 + w)
        else:
            label.align, box = "right", (x - 4 - w, x - 4)
        row = 0
        while row < len(taken) and any(box[0] < b + GAP and a < box[1] + GAP for a, b in taken[row]):
            row += 1
        if row == len(taken):
            taken.append([])
        taken[row].append(box)
        label.row = row
    return len(taken)


def strip_height(rows: int) -> int:
    return rows * STRIP_ROW + 6 if rows else 0


def label_layers(labels: list[Label]) -> list[Any]:
    """The strip's text marks (one per alignment and style, so that each keeps its own)."""
    import altair as alt

    layers = []
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for label in labels:
        groups.setdefault((label.align, label.colour, label.bold), []).append(
            {"value": label.value, "label": label.text, "y": 2 + label.row * STRIP_ROW})
    for (align, colour, bold), rows in groups.items():
        layers.append(alt.Chart(alt.Data(values=rows)).mark_text(
            align=align, baseline="top", dx=4 if align == "left" else -4, color=colour,
            fontWeight="bold" if bold else "normal").encode(x="value:Q", y=alt.Y("y:Q", scale=None), text="label:N"))
    return layers


def rule_layers(lines: list[Line], top: int) -> list[Any]:
    """Dashed vertical reference lines, drawn from under the label strip to the axis."""
    import altair as alt

    if not lines:
        return []
    rows = [{"value": line.value} for line in lines]
    return [alt.Chart(alt.Data(values=rows)).mark_rule(color=REFERENCE, strokeDash=[5, 4], strokeWidth=1.2).encode(
        x="value:Q", y=alt.value(top), y2=alt.value("height"))]


def band_rect(low: float, high: float, top: int) -> list[Any]:
    """The shaded range a null claim is judged against, under the label strip."""
    import altair as alt

    base = alt.Chart(alt.Data(values=[{"low": low, "high": high}]))
    return [base.mark_rect(color=BAND, opacity=0.9).encode(x="low:Q", x2="high:Q", y=alt.value(top),
                                                            y2=alt.value("height"))]


def y_reference_layers(lines: list[Line]) -> list[Any]:
    """Dashed horizontal reference lines, labelled at their right end above the line."""
    import altair as alt

    if not lines:
        return []
    base = alt.Chart(alt.Data(values=[{"value": line.value, "label": line.label} for line in lines]))
    return [base.mark_rule(color=REFERENCE, strokeDash=[5, 4], strokeWidth=1.2).encode(y="value:Q"),
            base.mark_text(align="right", baseline="bottom", dy=-3, x="width", color=REFERENCE).encode(
                y="value:Q", text="label:N")]


def x_reference_layers(lines: list[Line], xs: list[float], plot_width: float) -> list[Any]:
    """Vertical reference lines on a chart whose plot has no strip: labels placed apart at the top."""
    if not lines:
        return []
    labels = [Label(line.value, line.label) for line in lines]
    low, high = padded([*xs, *(line.value for line in lines)])
    place(labels, low, high, plot_width)
    return rule_layers(lines, 0) + label_layers(labels)


def padded(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.05
    return low - pad, high + pad
