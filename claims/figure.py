"""The chart part of a claim spec: what to draw (`figure`), how to label it (`axis`), what a
reader should look at (`caption`).

`figure` is a name, one panel, or a list of panels drawn one under another as one figure:

    figure: alpha_sweep                          # a preset (the names used before panels existed)
    figure: {kind: rank, draws: control.set_auroc, label: random neuron sets}
    figure:
      - {kind: sweep, y: {label: Compliance, format: .0%}}
      - {kind: rank, draws: control.seed_slopes_pp, label: random neuron sets}

Kinds (site_build/common/figures draws them; a field is a result name, `control.` for the
control's result, dotted for a key inside a value, as in assertions):

  intervals  one row per estimate: point and interval, optionally the per-split values behind it
             as dots. Default rows: the metric, and the control's metric when it has one.
  rank       the claim's value against one value per random draw (a dot each; None marks a draw
             that broke the model, counted against the claim, never dropped), with the rank p.
  sweep      the claim's series over a setting (alpha) with its band, and the control's series
             (one line per seed, one legend entry for all of them).
  scatter    one point per row of a table with intervals on both axes (detection against
             steering, method by method).

Every kind draws the constants the claim's assertions compare its drawn quantities with (as
reference lines), and a null claim's chart shades the range the null is judged against: the
control's interval or range of draws, else the equivalence margin of its `power`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

FIELD_PATTERN = r"^(control\.)?[A-Za-z_][\w]*(\.[\w-]+)*$"
PRESETS: dict[str, dict[str, Any]] = {
    "estimate_vs_control": {"kind": "intervals"},
    "alpha_sweep": {"kind": "sweep"},
    "detection_vs_steering": {
        "kind": "scatter", "x": {"label": "Detection", "unit": "held-out AUROC"},
        "y": {"label": "Steering effect", "unit": "pp"},
        "reference": [{"value": 0.5, "axis": "x", "label": "chance"}, {"value": 0, "axis": "y", "label": "no effect"}]},
}


#: A d3-format specifier (https://d3js.org/d3-format#locale_format), as vega-lite reads `format`.
D3_FORMAT = re.compile(r"^(?:.?[<>=^])?[-+( ]?[$#]?0?(?P<width>\d+)?,?(?:\.(?P<precision>\d+))?~?[efgrs%pbodxXcn]?$")
MAX_WIDTH, MAX_PRECISION = 40, 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Axis(_Strict):
    """How a chart labels one quantity."""

    label: str = Field(min_length=1, description="The quantity in words, e.g. 'Held-out AUROC' (not a field name).")
    unit: str = Field(default="", description="Shown after the label in parentheses, e.g. 'pp per unit of alpha'.")
    format: str | None = Field(
        default=None,
        description="d3-format of the tick labels, e.g. '.2f' or '+.0f'; '.0%' shows fractions as "
        "percentages. Default: a percentage when the statement formats the metric with %, else automatic.")

    @field_validator("format")
    @classmethod
    def _d3_format(cls, value: str | None) -> str | None:
        """Checked here, so that a bad format is file:line, not a JavaScript stack from the renderer."""
        if value is None:
            return value
        match = D3_FORMAT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a d3 format ([[fill]align][sign][$#][0][width][,][.precision][~]"
                             "[type], e.g. '.2f', '+.0f', '.0%')")
        if int(match["width"] or 0) > MAX_WIDTH or int(match["precision"] or 0) > MAX_PRECISION:
            raise ValueError(f"{value!r}: width at most {MAX_WIDTH}, precision at most {MAX_PRECISION}")
        return value


class Reference(_Strict):
    """A reference line drawn across the chart."""

    value: float = Field(allow_inf_nan=False,
                         description="Where the line is, in the axis' units (e.g. 0.5 for chance AUROC).")
    label: str = Field(default="", description="What the line is, e.g. 'chance'.")
    axis: Literal["x", "y"] | None = Field(
        default=None, description="Which axis the value is on (default: the panel's value axis).")


class Row(_Strict):
    """One row of an intervals panel."""

    field: str = Field(pattern=FIELD_PATTERN, description="An estimate, e.g. auroc or control.gain_over_strongest.")
    label: str = Field(default="", description="The row's label (default: the field in words).")
    points: str | None = Field(
        default=None, pattern=FIELD_PATTERN,
        description="A list of values behind the estimate drawn as dots, e.g. per_split_auroc.")


class _Panel(_Strict):
    title: str | None = Field(default=None, description="A short panel title; the claim's title is not repeated.")
    reference: list[Reference] = Field(
        default_factory=list, description="Reference lines beyond the assertion's thresholds, e.g. chance.")


class IntervalsPanel(_Panel):
    """Point and interval per estimate (a forest plot)."""

    kind: Literal["intervals"] = Field(description="intervals: one row per estimate.")
    rows: list[Row | str] = Field(
        default_factory=list,
        description="Estimates to draw, top to bottom (a field, or {field, label, points}). Default: "
        "the metric and the control's metric. Rows the assertions read are drawn in the claim's colour.")
    x: Axis | None = Field(default=None, description="The value axis (default: the claim's `axis`).")


class RankPanel(_Panel):
    """The claim's value among random draws: what a rank p-value tests."""

    kind: Literal["rank"] = Field(description="rank: the value against its random draws.")
    draws: str = Field(pattern=FIELD_PATTERN,
                       description="The field with one value per draw, e.g. control.set_auroc; None marks a "
                       "draw that broke the model (shown, counted against the claim).")
    value: str | None = Field(default=None, pattern=FIELD_PATTERN,
                              description="The claim's value compared with the draws (default: the metric).")
    p: str | None = Field(default=None, pattern=FIELD_PATTERN,
                          description="The rank p-value shown beside the chart (default: control.rank_p, if any).")
    label: str = Field(default="random draws", description="What one draw is, plural, e.g. 'random neuron sets'.")
    value_label: str = Field(default="this claim", description="What the claim's value is, e.g. 'H-neurons'.")
    x: Axis | None = Field(default=None, description="The value axis (default: the claim's `axis`).")


class SweepPanel(_Panel):
    """A series over a setting, against the control's series."""

    kind: Literal["sweep"] = Field(description="sweep: the claim's series against the control's.")
    series: str = Field(default="sweep", pattern=FIELD_PATTERN,
                        description="The claim's series: [{<x_key>, value, ci_low, ci_high}, ...].")
    controls: str | None = Field(
        default=None, pattern=FIELD_PATTERN,
        description="The control's series: one, a list, or {seed: series} (default: control.sweeps, else "
        "control.sweep).")
    x_key: str = Field(default="alpha", description="The setting's key in each point of a series.")
    label: str = Field(default="control", description="What one control series is, plural, e.g. 'random neuron sets'.")
    value_label: str = Field(default="this claim", description="What the claim's series is, e.g. 'H-neurons'.")
    x: Axis | None = Field(default=None, description="The setting's axis (default: 'alpha').")
    y: Axis | None = Field(default=None, description="The value axis (default: the result's sweep_label).")


class ScatterPanel(_Panel):
    """One point per table row with intervals on both axes."""

    kind: Literal["scatter"] = Field(description="scatter: rows of a table, x against y, both with intervals.")
    points: str = Field(default="methods", pattern=FIELD_PATTERN,
                        description="The table: rows with <x_key>, <x_key>_ci_low/high, <y_key>, ... and a label.")
    x_key: str = Field(default="detection", description="The x value's key in each row.")
    y_key: str = Field(default="steering", description="The y value's key in each row.")
    label_key: str = Field(default="method", description="The key naming each row.")
    x: Axis | None = Field(default=None, description="The x axis.")
    y: Axis | None = Field(default=None, description="The y axis.")


Panel = Annotated[IntervalsPanel | RankPanel | SweepPanel | ScatterPanel, Field(discriminator="kind")]
KINDS = ("intervals", "rank", "sweep", "scatter")


def _figure_tag(value: Any) -> str:
    if isinstance(value, str):
        return "name"
    return "panels" if isinstance(value, list) else "panel"


FigureItem = Annotated[Annotated[str, Tag("name")] | Annotated[Panel, Tag("panel")], Discriminator(_figure_tag)]
FigureField = Annotated[
    Annotated[str, Tag("name")] | Annotated[Panel, Tag("panel")] | Annotated[list[FigureItem], Tag("panels")],
    Discriminator(_figure_tag),
]
#: Union tags pydantic puts into error locations (left out of the `file:line: field` shown).
LOCATION_TAGS = {"name", "panel", "panels", *KINDS}


def panels(figure: Any) -> list[dict[str, Any]]:
    """A spec's `figure` as a list of panel dicts (`{"name": ...}` for a name, whether known or not)."""
    items = figure if isinstance(figure, list) else [] if figure is None else [figure]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({**PRESETS[item], "preset": item} if item in PRESETS else
                       {"kind": item} if item in KINDS else {"name": item})
        else:
            out.append(item.model_dump(mode="json") if isinstance(item, BaseModel) else dict(item))
    return out
