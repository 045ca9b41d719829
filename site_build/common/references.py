"""Claim references in prose: the only way a number reaches a reader.

Content is Markdown with Jinja expressions, evaluated against the verified results at build time:

    {{ claim("hneuron-probe-accuracy") }}              the statement, with its status badge
    {{ cite("hneuron-probe-accuracy") }}               value (CI, n) with its status badge
    {{ claim("hneuron-probe-accuracy").value | pct }}  one field through a filter
    {{ claim("x").ci | ci }}  {{ claim("x").n }}  {{ claim("x").control.value | pct(0) }}
    {{ figure("hneuron-probe-accuracy") }}             the claim's chart, numbered, with a caption

Citations of the literature are `[@key]` (site_build.common.bibliography); cross-references are
{ref}`fig:<claim id>` and {ref}`sec:<heading anchor>` (site_build.common.xref), numbered alike on
the site and in the paper.

Fields: value, ci (ci[0], ci[1]), n, level, unit, status, title, statement, url, standing,
control (value, ci, n, holds, description, none, why). Filters: pct(digits=1), num(digits=None),
ci(style=None) where style is "pct", "num" or a format spec such as ".2f".

A claim that is not verified never renders as a standing number: its value carries a visible
failed / stale / error badge, and a claim without a verified value renders as the badge alone.
An unknown id renders as a visible error and is a build warning (an error under --strict).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

from claims.numbers import fmt_value
from site_build.common.records import ClaimRecord, Study

STASH = re.compile("\ue000(\\d+)\ue001")
PARAGRAPH = re.compile("<p>\\s*\ue000(\\d+)\ue001\\s*</p>")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def style_spec(style: str | None, default: str) -> str:
    return {"pct": ".1%", "num": ".3g", None: default}.get(style, style or default)


class Citations:
    """One rendering's claim references and citations: its mode (html or md), links, charts and
    warnings. `charts` maps claim id -> figures.Chart; `chart_src(rel)` is how a page addresses a
    chart file (a relative path on the site, a data URI in the standalone paper)."""

    def __init__(self, study: Study, mode: str, where: str, link: Callable[[str], str | None],
                 charts: dict[str, Any] | None = None, chart_src: Callable[[str], str] | None = None,
                 bibliography: Any = None, numbering: Any = None, page: str | None = None):
        from site_build.common.bibliography import CitedWorks

        self.study, self.mode, self.where, self.link = study, mode, where, link
        self.charts, self.chart_src = charts or {}, chart_src or (lambda rel: rel)
        self.stash: list[str] = []
        self.blocks: set[int] = set()  # stashed fragments that are blocks (figures), not inline
        self.warnings: list[str] = []
        self.cited: list[str] = []
        self.figures = 0
        self.numbering, self.page = numbering, page  # page: the site page rendered (None: standalone paper, md)
        self.works = CitedWorks(bibliography, mode, self.out, self.warnings)

    # ---- output --------------------------------------------------------------------------
    def out(self, html: str, md: str, block: bool = False) -> Any:
        """A fragment: in html mode stashed behind a placeholder that Markdown leaves alone."""
        if self.mode == "md":
            return md
        self.stash.append(html)
        if block:
            self.blocks.add(len(self.stash) - 1)
        return Markup(f"\ue000{len(self.stash) - 1}\ue001")

    def unstash(self, html: str) -> str:
        """Put the fragments back; a block alone in a paragraph replaces the paragraph."""
        def block(m: re.Match[str]) -> str:
            index = int(m.group(1))
            return self.stash[index] if index in self.blocks else m.group(0)

        html = PARAGRAPH.sub(block, html)
        return STASH.sub(lambda m: self.stash[int(m.group(1))], html)

    def text(self, text: str) -> Any:
        return escape(text) if self.mode == "html" else md_escape(text)

    def badge(self, record: ClaimRecord | None, label: str | None = None) -> tuple[str, str]:
        status = record.status if record else "error"
        label = label or status.replace("_", " ")
        url = self.link(record.id) if record else None
        css = f"badge badge-{escape(status)}"
        html = (f'<a class="{css}" href="{escape(url)}">{escape(label)}</a>' if url
                else f'<span class="{css}">{escape(label)}</span>')
        return html, f"**[{label}]**"

    # ---- Jinja globals ----------------------------------------------------------------------
    def claim(self, claim_id: str) -> ClaimRef | MissingRef:
        record = self.study.get(claim_id)
        if record is None:
            self.warnings.append(f"{self.where}: cites unknown claim {claim_id!r}")
            return MissingRef(self, claim_id)
        self.cited.append(claim_id)
        return ClaimRef(self, record)

    def cite(self, claim_id: str) -> Any:
        ref = self.claim(claim_id)
        return ref.short

    def figure(self, claim_id: str) -> Any:
        from site_build.common import figures

        record = self.study.get(claim_id)
        if record is None:
            self.warnings.append(f"{self.where}: figure of unknown claim {claim_id!r}")
            return MissingRef(self, claim_id)
        chart = self.charts.get(claim_id)
        if chart is None:
            if not all(n.fresh for n in record.nodes.values()):  # the claim's own status is already reported
                return self.out(*self.badge(record, f"chart withheld: claim {record.status}"), block=True)
            self.warnings.append(f"{self.where}: claim {claim_id!r} has no chart to show")
            return self.out(*self.badge(record, "no chart"), block=True)
        self.figures += 1
        label = self.numbering.figure_label(claim_id) if self.numbering else f"Figure {self.figures}."
        badge_html, badge_md = self.badge(record) if not record.standing else ("", "")
        html = figures.html(chart, self.chart_src, label, badge_html, anchor=f"figure-{record.id}")
        md = figures.markdown(chart, label, md_escape) + (f" {badge_md}" if badge_md else "")
        return self.out(html, md, block=True)

    def bibliography_refs(self, text: str, rel: str) -> str:
        """`[@key]` citations and `{ref}` cross-references in a content file's source, replaced
        before the Jinja step."""
        return self.cross_refs(self.works.replace(text, rel), rel)

    def cross_refs(self, text: str, rel: str) -> str:
        """`{ref}`fig:id`` and `{ref}`sec:label`` as numbered links (site_build.common.xref)."""
        from site_build.common.xref import FIGURE_CALL, REF

        shown = set(FIGURE_CALL.findall(text))
        pieces, last = [], 0
        for match in REF.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            pieces += [text[last:match.start()], str(self._ref(match.group(1).strip(), shown, rel, line))]
            last = match.end()
        return "".join(pieces) + text[last:]

    def _root(self) -> str:
        return "../" * self.page.count("/") if self.page else ""

    def _ref(self, label: str, shown: set[str], rel: str, line: int) -> Any:
        numbering = self.numbering
        target: tuple[str, str | None] | None = None  # (text, href)
        if numbering is not None and label.startswith("fig:") and label[4:] in numbering.figures:
            claim_id = label[4:]
            text = f"Figure {numbering.figures[claim_id]}"
            url = self.link(claim_id)
            if claim_id in shown:
                href = f"#figure-{claim_id}"
            elif url and url.startswith("#"):
                href = url
            else:
                href = f"{url}#figure-{claim_id}" if url else None
            target = (text, href)
        elif numbering is not None and label in numbering.sections:
            section = numbering.sections[label]
            text = f"Section {section.number}" if section.number else f"“{section.title}”"
            if self.mode == "md":
                href = None
            elif self.page is None:  # the standalone paper: its own sections only
                href = f"#{section.anchor}" if section.page == "paper.html" else None
            elif section.page == self.page:
                href = f"#{section.anchor}"
            else:
                href = f"{self._root()}{section.page}#{section.anchor}"
            target = (text, href)
        if target is None:
            self.warnings.append(f"{rel}:{line}: cross-reference to unknown {label!r} "
                                 "(fig:<claim id> with a chart, or sec:<heading anchor>)")
            return self.out(f'<span class="xref missing">{escape("?" + label)}</span>', f"**?{label}**")
        text, href = target
        html = (f'<a class="xref" href="{escape(href)}">{escape(text)}</a>' if href
                else f'<span class="xref">{escape(text)}</span>')
        return self.out(html, md_escape(text))

    def rests_on_block(self, claim_ids: list[Any], lineno: int, caller: Any) -> Any:
        """A conclusion bound to claims: as written when they all stand, else struck through with
        the reason (and a build warning)."""
        body = str(caller())
        missing = [str(c) for c in claim_ids if self.study.get(str(c)) is None]
        for claim_id in missing:
            self.warnings.append(f"{self.where}:{lineno}: rests_on names unknown claim {claim_id!r}")
        down = [self.study.get(str(c)) for c in claim_ids if str(c) not in missing]
        down = [r for r in down if not r.standing]
        if not down and not missing:
            return Markup(body) if self.mode == "html" else body
        why = "; ".join([f"{r.id!r} is {r.status.replace('_', ' ')}" for r in down]
                        + [f"{c!r} is unknown" for c in missing])
        self.warnings.append(f"{self.where}:{lineno}: a conclusion rests on claims that do not stand ({why}): "
                             "it is shown struck through")
        note = f"Withdrawn: this conclusion rests on claims that do not stand ({why})."
        if self.mode == "md":
            return f"> **{md_escape(note)}**\n>\n" + "\n".join(
                "> " + _strike(line) if line.strip() else ">" for line in body.strip("\n").splitlines()) + "\n"
        badges = " ".join(self.badge(r)[0] for r in down)
        open_html = (f'<div class="rests-on not-standing"><p class="withdrawn-note">{escape(note)} {badges}</p>'
                     '<div class="withdrawn">')
        return Markup(f"\n\n{self.out(open_html, '', block=True)}\n\n{body.strip()}\n\n"
                      f"{self.out('</div></div>', '', block=True)}\n\n")

    def globals(self) -> dict[str, Any]:
        return {"claim": self.claim, "cite": self.cite, "figure": self.figure, "rests_on_block": self.rests_on_block}


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


_ITEM = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+|\s*#{1,6}\s+)?(.*?)\s*$")


def _strike(line: str) -> str:
    """A Markdown line with its text struck through (list markers and headings kept)."""
    match = _ITEM.match(line)
    prefix, text = match.group(1) or "", match.group(2)
    return f"{prefix}~~{text}~~" if text else line


class Quantity:
    """One number of a claim; it renders as standing only when its claim is verified."""

    def __init__(self, ref: ClaimRef, value: Any, spec: str):
        self.ref, self.value, self.spec = ref, value, spec

    def render(self, spec: str | None = None) -> Any:
        cit, record = self.ref.cit, self.ref.record
        if self.value is None:
            return cit.out(*cit.badge(record, f"{record.status}: no verified value"))
        text = fmt_value(self.value, spec or self.spec)
        return shown(cit, record, text)

    def __html__(self) -> str:
        return str(self.render())

    def __str__(self) -> str:
        return str(self.render())

    def __float__(self) -> float:
        return float(self.value) if self.value is not None else float("nan")


def shown(cit: Any, record: Any, text: str) -> Any:
    """A rendered number: plain when its claim stands, else withheld behind the claim's status badge."""
    if record.standing:
        return cit.text(text)
    badge_html, badge_md = cit.badge(record)
    return cit.out(f'<span class="withheld status-{escape(record.status)}">{escape(text)} {badge_html}</span>',
                   f"{md_escape(text)} {badge_md}")


class Interval:
    def __init__(self, ref: ClaimRef, ci: list[float] | None, level: float | None, spec: str):
        self.ref, self.level, self.spec = ref, level, spec
        self.bounds = [Quantity(ref, v, spec) for v in (ci or [None, None])]
        self.present = ci is not None

    def __getitem__(self, index: int) -> Quantity:
        return self.bounds[index]

    def render(self, spec: str | None = None, with_level: bool = False) -> Any:
        cit, record = self.ref.cit, self.ref.record
        if not self.present:
            return cit.out(*cit.badge(record, f"{record.status}: no verified interval"))
        low, high = (fmt_value(b.value, spec or self.spec) for b in self.bounds)
        label = f"{fmt_value(self.level, '.0%')} CI " if with_level and self.level else ""
        text = f"{label}{low} to {high}"
        return shown(cit, record, text)

    def __html__(self) -> str:
        return str(self.render())

    def __str__(self) -> str:
        return str(self.render())


class ClaimRef:
    """What `claim("id")` returns: renders as the statement with a badge; fields for finer use."""

    def __init__(self, cit: Citations, record: ClaimRecord):
        self.cit, self.record = cit, record
        o = record.outcome
        self.value = Quantity(self, o.value, record.value_format)
        self.ci = Interval(self, o.ci, o.level, record.value_format)
        self.n = Quantity(self, o.n, "d")
        self.level = Quantity(self, o.level, ".0%")
        self.unit, self.status, self.title = o.unit, o.status, o.title
        self.statement = o.statement
        self.standing = record.standing
        self.verdict, self.expect = o.verdict, o.expect
        self.url = cit.link(o.id)
        self.control = ControlRef(self)

    @property
    def short(self) -> Any:
        """value (95% CI low to high; n = N unit) with the badge when not standing."""
        cit, o = self.cit, self.record.outcome
        if o.value is None and o.ci is None:
            return cit.out(*cit.badge(self.record, f"{o.status}: no verified value"))
        return cit.out(*_short(self.record, o.value, o.ci, o.level, o.n, o.unit, cit))

    @property
    def badge(self) -> Any:
        return self.cit.out(*self.cit.badge(self.record))

    def render(self) -> Any:
        cit, record, o = self.cit, self.record, self.record.outcome
        text = o.statement or f"{o.title} (no verified statement)"
        badge_html, badge_md = cit.badge(record)
        # the statement reads as prose; its badge (the claim's status) is the link to the claim page
        html = f'<span class="claim-ref status-{escape(o.status)}">{escape(text)} {badge_html}</span>'
        md = md_escape(text) + ("" if record.standing else f" {badge_md}")
        return cit.out(html, md)

    def __html__(self) -> str:
        return str(self.render())

    def __str__(self) -> str:
        return str(self.render())


class ControlRef:
    def __init__(self, ref: ClaimRef):
        c = ref.record.outcome.control
        self.ref, self.none, self.why = ref, bool(c.get("none")), c.get("why") or ""
        self.description, self.experiment, self.holds = c.get("description", ""), c.get("experiment", ""), c.get("holds")
        spec = ref.record.value_format
        self.value = Quantity(ref, c.get("value"), spec)
        self.ci = Interval(ref, c.get("ci"), c.get("level"), spec)
        self.n = Quantity(ref, c.get("n"), "d")

    def render(self) -> Any:
        cit, c = self.ref.cit, self.ref.record.outcome.control
        if self.none:
            return cit.text(f"no control ({self.why})")
        if c.get("value") is None and c.get("ci") is None:
            return cit.out(*cit.badge(self.ref.record, f"{self.ref.status}: no verified control"))
        return cit.out(*_short(self.ref.record, c.get("value"), c.get("ci"), c.get("level"), c.get("n"),
                               c.get("unit", ""), cit))

    def __html__(self) -> str:
        return str(self.render())

    def __str__(self) -> str:
        return str(self.render())


def _short(record: ClaimRecord, value: Any, ci: Any, level: Any, n: Any, unit: str, cit: Citations) -> tuple[str, str]:
    spec = record.value_format
    parts = []
    if ci:
        parts.append(f"{fmt_value(level, '.0%')} CI {fmt_value(ci[0], spec)} to {fmt_value(ci[1], spec)}")
    if n is not None:
        parts.append(f"n = {n}{' ' + unit if unit else ''}")
    text = (fmt_value(value, spec) if value is not None else "") + (f" ({'; '.join(parts)})" if parts else "")
    text = text.strip()
    if record.standing:
        return str(escape(text)), md_escape(text)
    badge_html, badge_md = cit.badge(record)
    return (f'<span class="withheld status-{escape(record.status)}">{escape(text)} {badge_html}</span>',
            f"{md_escape(text)} {badge_md}")


class MissingRef:
    """An unknown claim id: renders as a visible error; any field of it is itself."""

    def __init__(self, cit: Citations, claim_id: str):
        self.cit, self.claim_id = cit, claim_id

    def __getattr__(self, name: str) -> MissingRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, index: Any) -> MissingRef:
        return self

    def render(self, *args: Any, **kwargs: Any) -> Any:
        label = f"unknown claim {self.claim_id!r}"
        return self.cit.out(f'<span class="badge badge-error">{escape(label)}</span>', f"**[{label}]**")

    def __html__(self) -> str:
        return str(self.render())

    def __str__(self) -> str:
        return str(self.render())


# ---- filters ---------------------------------------------------------------------------------
def pct(item: Any, digits: int = 1) -> Any:
    return _format(item, f".{int(digits)}%")


def num(item: Any, digits: int | None = None) -> Any:
    return _format(item, ".3g" if digits is None else f".{int(digits)}f")


def ci(item: Any, style: str | None = None) -> Any:
    if isinstance(item, ClaimRef | ControlRef):
        item = item.ci
    if isinstance(item, Interval):
        return item.render(style_spec(style, item.spec), with_level=True)
    if isinstance(item, MissingRef):
        return item.render()
    raise TypeError(f"the ci filter takes a claim, its control or an interval, not {type(item).__name__}")


def _format(item: Any, spec: str) -> Any:
    if isinstance(item, Quantity | Interval | MissingRef):
        return item.render(spec)
    if isinstance(item, ClaimRef | ControlRef):
        return item.value.render(spec)
    raise TypeError(f"format a claim field (claim('id').value), not a bare {type(item).__name__}: "
                    "numbers in prose must come from claims")


FILTERS = {"pct": pct, "num": num, "ci": ci}

#: What content may read of each reference object (the sandbox refuses anything else).
SAFE_ATTRIBUTES: dict[str, frozenset[str]] = {
    "ClaimRef": frozenset({"value", "ci", "n", "level", "unit", "status", "title", "statement", "standing", "url",
                           "control", "short", "badge", "render", "verdict", "expect"}),
    "ControlRef": frozenset({"none", "why", "description", "experiment", "holds", "value", "ci", "n", "render"}),
    "Quantity": frozenset({"value", "render"}),
    "Interval": frozenset({"present", "level", "render"}),
    "Citations": frozenset(),
}
SAFE_ATTRIBUTES["MissingRef"] = SAFE_ATTRIBUTES["ClaimRef"] | SAFE_ATTRIBUTES["ControlRef"] | SAFE_ATTRIBUTES["Quantity"]
