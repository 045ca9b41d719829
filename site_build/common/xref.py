"""Figure and section numbers, the same on every page of the site, in paper.html, the PDF and
paper.md, and the `{ref}` cross-references that cite them.

    {ref}`fig:hneuron-probe-auroc`    -> "Figure 1", linked to the figure
    {ref}`sec:methods`                -> "Section 2", linked to the paper's section
    {ref}`sec:story/controls`         -> the heading "Controls ..." of content/story.md, linked

Figures are numbered in the order the paper shows them (`{{ figure("id") }}` in content/paper/,
file by file), then the figures other pages show, then every other claim's chart in spec order;
a claim page's chart carries the same number. The paper's headings are numbered (1, 2, 3.1, ...)
from its top heading level down; site pages' headings are cited by title. An unknown label renders
as a visible error and is a build warning naming file:line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FIGURE_CALL = re.compile(r"""\bfigure\(\s*["']([^"']+)["']\s*\)""")
REF = re.compile(r"\{ref\}`([^`\n]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def slugify(title: str) -> str:
    """The anchor markdown-it's anchors plugin gives a heading (mdit_py_plugins.anchors)."""
    return re.sub(r"[^\w\u4e00-\u9fff\- ]", "", title.lower().replace(" ", "-"))


def _plain(title: str) -> str:
    """A heading's text as the anchors plugin reads it (emphasis and link markup dropped)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
    return re.sub(r"[*_]", "", text).replace("`", "")


def headings(body: str) -> list[tuple[int, str, str]]:
    """(level, title, anchor) of each Markdown heading outside code fences, anchors made unique
    as the anchors plugin makes them (one document)."""
    out, fenced, seen = [], False, set()
    for line in body.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match and "{{" not in match.group(2):
            title = _plain(match.group(2))
            slug = base = slugify(title)
            i = 1
            while slug in seen:
                slug = f"{base}-{i}"
                i += 1
            seen.add(slug)
            out.append((len(match.group(1)), title, slug))
    return out


@dataclass(frozen=True)
class Section:
    number: str  # "" for a site page's heading (cited by title)
    title: str
    page: str  # the page it is on: "paper.html", "story.html", ...
    anchor: str


@dataclass
class Numbering:
    figures: dict[str, int] = field(default_factory=dict)  # claim id -> figure number
    sections: dict[str, Section] = field(default_factory=dict)  # "sec:<label>" -> section
    paper_numbers: dict[str, str] = field(default_factory=dict)  # paper anchor -> "3.1"

    def figure_label(self, claim_id: str) -> str:
        number = self.figures.get(claim_id)
        return f"Figure {number}." if number else "Figure."


def numbering(paper: Iterable[Any], pages: Iterable[Any], charted: Iterable[str]) -> Numbering:
    """Numbers for the paper's sections and every figure (paper: content/paper/*.md in order;
    pages: the site's other content files; charted: claim ids with a chart, in spec order)."""
    paper, pages = list(paper), list(pages)
    n = Numbering()
    for prose in [*paper, *pages]:
        for claim_id in FIGURE_CALL.findall(prose.body):
            n.figures.setdefault(claim_id, len(n.figures) + 1)
    for claim_id in charted:
        n.figures.setdefault(claim_id, len(n.figures) + 1)
    found = headings("\n\n".join(p.body for p in paper))
    top = min((level for level, _, _ in found), default=2)
    counters: list[int] = []
    for level, title, anchor in found:
        depth = level - top
        counters = (counters + [0] * (depth + 1))[: depth + 1]
        counters[depth] += 1
        number = ".".join(map(str, counters))
        n.paper_numbers[anchor] = number
        n.sections.setdefault(f"sec:{anchor}", Section(number, title, "paper.html", anchor))
    for prose in pages:
        stem = prose.path.stem
        for _, title, anchor in headings(prose.body):
            section = Section("", title, f"{stem}.html", anchor)
            n.sections.setdefault(f"sec:{stem}/{anchor}", section)
            n.sections.setdefault(f"sec:{anchor}", section)
    return n


def number_headings(html: str, numbers: dict[str, str]) -> str:
    """The paper's rendered headings with their numbers in front (<span class="secno">)."""
    def add(m: re.Match[str]) -> str:
        number = numbers.get(m.group(3))
        if not number:
            return m.group(0)
        return f'{m.group(1)}<span class="secno">{number}</span> '

    return re.sub(r'(<h([1-6]) id="([^"]+)">)', add, html)


def number_md_headings(text: str, numbers: dict[str, str]) -> str:
    """The same numbers in paper.md (headings in document order, anchors made as above)."""
    out, fenced, seen = [], False, set()
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            slug = base = slugify(_plain(match.group(2)))
            i = 1
            while slug in seen:
                slug = f"{base}-{i}"
                i += 1
            seen.add(slug)
            if numbers.get(slug):
                line = f"{match.group(1)} {numbers[slug]} {match.group(2)}"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
