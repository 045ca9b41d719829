"""Charts for claims, drawn from what each claim's spec asks (claims/figure.py: `figure`, `axis`,
`caption`) and rendered to static SVG with vl-convert: no JavaScript, no CDN, nothing fetched when
a page is read.

Every panel is drawn twice: `figures/<id>[-k].svg` (wide: screens and print, vectors in the PDF)
and `figures/<id>[-k].narrow.svg` (phones), with the same text sizes; a page offers both through
`<picture>`, so that chart text stays at 12 px on a 390 px screen. A claim without `figure` gets
the intervals panel when it has an interval.

A chart is drawn only from fresh results (else it is withheld: the claim's status already says
why). A chart whose data is missing is a build warning naming the spec file and line (an error
under --strict), and the page says that there is no chart.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from markupsafe import escape

from claims.errors import BuildError, ClaimsError
from claims.figure import KINDS as SPEC_KINDS
from claims.figure import PRESETS, panels
from site_build.common.figures.data import ClaimData, FigureDataError
from site_build.common.figures.kinds import KINDS, kind
from site_build.common.outputs import Outputs, key_of

__all__ = ["Chart", "FigureDataError", "KINDS", "add_figures", "html", "kind", "markdown", "plan"]
WIDE, NARROW = 760, 340
#: Below this viewport width a page shows the narrow drawing (CSS pixels).
NARROW_MEDIA = "(max-width: 640px)"


@dataclass
class PanelFiles:
    wide: str
    narrow: str
    alt: str
    size: dict[str, list[int]] = field(default_factory=dict)  # rel -> [width, height]


@dataclass
class Chart:
    """A claim's figure: its panels' files and the caption to print under them."""

    panels: list[PanelFiles]
    caption: str

    def data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Drawn:
    """A panel drawn as Vega-Lite at both widths (JSON), before rendering."""

    wide: str
    narrow: str
    alt: str
    caption: str


def chosen(record: Any) -> list[dict[str, Any]]:
    """The panels a claim shows: its own, else the intervals panel when it has an interval."""
    if record.spec.figure is not None:
        return panels(record.spec.figure)
    return [{"kind": "intervals", "preset": "default"}] if record.outcome.ci is not None else []


def plan(record: Any) -> tuple[list[Drawn], str]:
    """Every panel of a claim's figure as Vega-Lite JSON, and the caption. Raises FigureDataError."""
    claim = ClaimData(record)
    drawn = []
    for panel in chosen(record):
        if "name" in panel:
            known = sorted({*PRESETS, *SPEC_KINDS})
            raise FigureDataError(f"{claim.where}: unknown figure {panel['name']!r} (known: {', '.join(known)})")
        fn = KINDS[panel["kind"]]
        wide, alt_text, caption = fn(claim, panel, WIDE)
        narrow, _, _ = fn(claim, panel, NARROW)
        drawn.append(Drawn(wide.to_json(), narrow.to_json(), alt_text, caption))
    try:
        caption = claim.render_caption()
    except ClaimsError as exc:  # a caption {field} the result lacks
        raise FigureDataError(exc.message, "caption") from None
    if caption is None:
        parts = [d.caption for d in drawn]
        caption = parts[0] if len(parts) == 1 else " ".join(f"({chr(97 + i)}) {p}" for i, p in enumerate(parts))
    return drawn, caption


def to_svg(spec_json: str) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(spec_json).encode("utf-8")


_SIZE = re.compile(rb'<svg[^>]*?\bwidth="([\d.]+)"[^>]*?\bheight="([\d.]+)"')


def svg_size(svg: bytes | None) -> list[int]:
    match = _SIZE.search(svg or b"")
    return [round(float(match[1])), round(float(match[2]))] if match else []


def add_figures(outputs: Outputs, study: Any, folder: str) -> tuple[dict[str, Chart | None], list[str]]:
    """Register every claim's chart files with `outputs`; returns claim id -> Chart (None: no chart)
    and the warnings of charts whose data is missing."""
    version = importlib.metadata.version("vl-convert-python")
    charts: dict[str, Chart | None] = {}
    warnings: list[str] = []
    for record in study.records:
        charts[record.id] = None
        if not chosen(record) or not record.nodes or not all(n.fresh for n in record.nodes.values()):
            continue  # no chart asked for, or withheld: the claim's status says why
        try:
            from site_build.plan_cache import cached_plan  # plans kept on disk by what they draw

            drawn, caption = cached_plan(study.project, record)
        except FigureDataError as exc:
            warnings.append(f"{record.spec_path}:{record.spec.line(exc.field)}: {exc.field}: {exc.message}")
            continue
        files = []
        for k, panel in enumerate(drawn):
            stem = f"{folder}/{record.id}" + (f"-{k + 1}" if k else "")
            files.append(PanelFiles(f"{stem}.svg", f"{stem}.narrow.svg", panel.alt))
            for rel, spec_json in ((f"{stem}.svg", panel.wide), (f"{stem}.narrow.svg", panel.narrow)):
                outputs.add(rel, key_of("figure", version, json.loads(spec_json)), lambda s=spec_json, r=record: _svg(s, r))
                files[-1].size[rel] = svg_size(outputs.read(rel))
        charts[record.id] = Chart(files, caption)
    return charts, warnings


def _svg(spec_json: str, record: Any) -> bytes:
    try:
        return to_svg(spec_json)
    except ValueError as exc:  # vega-lite refused the chart
        raise BuildError(f"{record.spec_path}:{record.spec.line('figure')}: figure could not be drawn: {exc}") from None


# ---- how pages show a chart ---------------------------------------------------------------
def html(chart: Chart, src: Callable[[str], str], label: str, extra: str = "", anchor: str = "") -> str:
    """A <figure>: each panel as a <picture> (narrow drawing on phones), then the caption."""
    parts = [f'<figure class="chart"{f" id={chr(34)}{escape(anchor)}{chr(34)}" if anchor else ""}>']
    for panel in chart.panels:
        wide, narrow = panel.size.get(panel.wide) or [], panel.size.get(panel.narrow) or []
        parts.append(f'<picture><source media="{NARROW_MEDIA}" srcset="{escape(src(panel.narrow))}"{_dims(narrow)}>'
                     f'<img src="{escape(src(panel.wide))}" alt="{escape(panel.alt)}"{_dims(wide)}></picture>')
    parts.append(f'<figcaption><span class="figure-label">{escape(label)}</span> {escape(chart.caption)}'
                 f"{' ' + extra if extra else ''}</figcaption></figure>")
    return "".join(parts)


def _dims(size: list[int]) -> str:
    return f' width="{size[0]}" height="{size[1]}"' if len(size) == 2 else ""


def markdown(chart: Chart, label: str, escape_md: Callable[[str], str]) -> str:
    caption = escape_md(f"{label} {chart.caption}")
    return "\n\n".join(f"![{caption if i == 0 else escape_md(p.alt)}]({p.wide})" for i, p in enumerate(chart.panels))
