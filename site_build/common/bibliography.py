"""Citations: `[@key]` or `[@a; @b]` in content, rendered from content/references.bib by
citeproc-py with a CSL style (default: Harvard author-date, which citeproc-py ships).

Every key cited anywhere in content/ is registered before anything renders, so that a citation
reads the same on every page (and "2025a" / "2025b" stay apart). A page that cites lists its
references at its end; the paper lists every reference it cites before its appendix.

A key that the .bib file lacks renders as a visible "[?key]" and is a build warning naming the
file and line (an error under --strict); so is a field of the .bib file that the style ignores.

A .bib file is text from anyone: every field is escaped before citeproc sees it (citeproc's HTML
formatter escapes only its own affixes), so `<script>` in a title is shown, never run; a `url`
must be an http(s) address and a `doi` a DOI (10.NNNN/...), or it is left out with a warning
naming file:line; a key defined twice is an error naming both lines.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims.errors import BuildError

_ENTRY = re.compile(r"^[ \t]*@(?P<type>\w+)[ \t]*[{(][ \t]*(?P<key>[^,\s{}()]+)[ \t]*,", re.M)
_URL = re.compile(r"^https?://[^\s\"'<>`\\{}|^]+$", re.I)
_DOI = re.compile(r"^10\.\d{4,9}/[^\s\"'<>`\\{}|^]+$")
_NOT_ENTRIES = {"comment", "preamble", "string"}
CITATION = re.compile(r"\[(@[\w:.\-/]+(?:\s*;\s*@[\w:.\-/]+)*)\]")
_CODE = re.compile(r"^(```|~~~).*?^\1[^\n]*$|`[^`\n]*`", re.S | re.M)
DEFAULT_STYLE = "harvard-cite-them-right"


def keys_of(match: re.Match[str]) -> list[str]:
    return [k.strip().lstrip("@") for k in match.group(1).split(";")]


def citations(text: str) -> Iterable[re.Match[str]]:
    """The citations in Markdown text, outside code spans and fenced blocks."""
    code = [m.span() for m in _CODE.finditer(text)]
    for match in CITATION.finditer(text):
        if not any(a <= match.start() < b for a, b in code):
            yield match


@dataclass
class Bibliography:
    """The cited entries of a project's .bib file, formatted once."""

    where: str  # content/references.bib, as messages name it
    fingerprint: str  # what renderings depend on: the .bib and style bytes
    known: set[str] = field(default_factory=set)
    cites: dict[tuple[str, ...], str] = field(default_factory=dict)  # keys -> citation (HTML)
    entries: dict[str, str] = field(default_factory=dict)  # key -> bibliography entry (HTML), in style order
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, where: str, csl: Path | None, texts: Iterable[Any]) -> Bibliography:
        """Parse `path` and format every citation that `texts` (content files) make."""
        groups = [tuple(keys_of(m)) for t in texts for m in citations(t.body)]
        style_bytes = csl.read_bytes() if csl and csl.is_file() else DEFAULT_STYLE.encode()
        if csl and not csl.is_file():
            raise BuildError(f"{where}: the CSL style {csl.name} is not in content/")
        if not path.is_file():
            bib = cls(where, hashlib.sha256(style_bytes).hexdigest())
            if groups:
                bib.warnings.append(f"{where}: no such file, but content cites {', '.join(sorted({*sum(groups, ())}))}")
            return bib
        data = path.read_bytes()
        bib = cls(where, hashlib.sha256(data + b"\0" + style_bytes).hexdigest())
        if groups:
            bib._format(path, csl, groups)
        else:
            bib.known = set(_source(path, where, []))
        return bib

    def _format(self, path: Path, csl: Path | None, groups: list[tuple[str, ...]]) -> None:
        from citeproc import (
            Citation,
            CitationItem,
            CitationStylesBibliography,
            CitationStylesStyle,
            formatter,
        )

        caught: list[str] = []
        source = _source(path, self.where, caught)
        self.warnings += caught
        self.known = set(source)
        try:
            style = CitationStylesStyle(str(csl) if csl else DEFAULT_STYLE, validate=False)
        except Exception as exc:  # citeproc raises lxml and its own errors for a bad style
            raise BuildError(f"{csl}: cannot read the CSL style: {exc}") from None
        bib = CitationStylesBibliography(style, source, formatter.html)
        unique = list(dict.fromkeys(tuple(k for k in g if k in self.known) for g in groups))
        made = [(g, Citation([CitationItem(k) for k in g])) for g in unique if g]
        for _, citation in made:
            bib.register(citation)
        bib.sort()
        for keys, citation in made:
            self.cites[keys] = str(bib.cite(citation, lambda item: None))
        for key, item in zip(bib.keys, bib.bibliography(), strict=True):
            self.entries[key] = str(item)

    # ---- rendering -------------------------------------------------------------------------------
    def cite(self, keys: list[str]) -> str | None:
        """The citation of these keys (HTML), or None when one of them is not in the .bib file."""
        if any(k not in self.known for k in keys):
            return None
        return self.cites.get(tuple(keys))

    def listed(self, cited: Iterable[str]) -> list[tuple[str, str]]:
        """(key, entry HTML) of the cited keys, in the style's order."""
        wanted = set(cited)
        return [(k, e) for k, e in self.entries.items() if k in wanted]


def _source(path: Path, where: str, caught: list[str]) -> Any:
    """The .bib file as citeproc's BibTeX source (URLs kept; `howpublished` read as the publisher)."""
    from citeproc.source.bibtex import BibTeX

    class Source(BibTeX):
        fields = {**BibTeX.fields, "url": "URL", "howpublished": "publisher", "institution": "publisher",
                  "organization": "publisher"}

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"{where}: cannot read: {exc}") from None
    # lines starting with % are comments (BibTeX ignores text outside entries; citeproc's parser does not)
    text = "\n".join("" if line.lstrip().startswith("%") else line for line in text.splitlines()) + "\n"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            source = Source(io.StringIO(text))
        except Exception as exc:  # citeproc's parser fails with KeyError, AssertionError, ValueError ...
            detail = f": {exc}" if str(exc) else ""
            raise BuildError(f"{where}: cannot parse the bibliography ({type(exc).__name__}{detail}); entries are "
                             "@article, @inproceedings, @book, @misc, @techreport ... {key, field = {...}}") from None
    caught += [f"{where}: {w.message} (the style ignores it)" for w in seen]
    lines = entry_lines(text, where)
    for key, reference in source.items():
        _clean(reference, f"{where}:{lines.get(key, 1)}: {key}", caught)
    return source


def entry_lines(text: str, where: str) -> dict[str, int]:
    """The line of each entry's key; a key defined twice is an error naming both lines."""
    lines: dict[str, int] = {}
    for match in _ENTRY.finditer(text):
        if match["type"].lower() in _NOT_ENTRIES:
            continue
        line = text.count("\n", 0, match.start()) + 1
        key = match["key"]
        if key in lines:
            raise BuildError(f"{where}:{line}: the key {key!r} is defined twice (lines {lines[key]} and {line}); "
                             "give each entry its own key")
        lines[key] = line
    return lines


def _clean(reference: Any, where: str, caught: list[str]) -> None:
    """Escape every field of a parsed entry in place; leave out a URL or DOI of the wrong shape."""
    for name in list(reference):
        if name in ("key", "type"):
            continue
        value = reference[name]
        if name.lower() in ("url", "doi"):
            text = str(value).strip()
            if not (_URL if name.lower() == "url" else _DOI).match(text):
                caught.append(f"{where}: {name.lower()} {text[:60]!r} is not "
                              + ("an http(s) address" if name.lower() == "url" else "a DOI (10.NNNN/...)")
                              + ": left out")
                del reference[name]
                continue
        reference[name] = _escaped(value)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return type(value)(html.escape(value, quote=True))
    if isinstance(value, list):
        value[:] = [_escaped(v) for v in value]
    elif isinstance(value, dict):
        for k in list(value):
            value[k] = _escaped(value[k])
    return value


def to_markdown(entry_html: str) -> str:
    """A formatted entry or citation (citeproc's HTML) as Markdown; a literal < or > stays an
    entity, so that no Markdown renderer takes a title's text for markup."""
    text = re.sub(r"</?(?:i|em)>", "*", entry_html)
    text = re.sub(r"</?(?:b|strong)>", "**", text)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return text.replace("<", "&lt;").replace(">", "&gt;")


def link_urls(entry_html: str) -> str:
    """Entries print their URL and DOI as text; make them links."""
    return re.sub(r"(https?://[^\s<]+?)(?=\.?(?:\s|$|<))", r'<a href="\1">\1</a>', entry_html)


class CitedWorks:
    """One rendering's citations: `[@key]` replaced in the text, the works cited listed at its end.

    `out(html, md)` is the rendering's way to place a fragment (Citations.out); `warnings` gets
    one line per unknown key, naming file and line."""

    def __init__(self, bib: Bibliography | None, mode: str, out: Any, warnings: list[str]):
        self.bib, self.mode, self.out, self.warnings = bib, mode, out, warnings
        self.cited: list[str] = []

    def replace(self, text: str, rel: str) -> str:
        if self.bib is None:
            return text
        pieces, last = [], 0
        for match in citations(text):
            keys = keys_of(match)
            pieces += [text[last:match.start()], str(self._cite(keys, rel, text.count("\n", 0, match.start()) + 1))]
            last = match.end()
        return "".join(pieces) + text[last:]

    def _cite(self, keys: list[str], rel: str, line: int) -> Any:
        from markupsafe import escape

        made = self.bib.cite(keys)
        if made is None:
            missing = [k for k in keys if k not in self.bib.known]
            self.warnings.append(f"{rel}:{line}: cites {', '.join(map(repr, missing))}, which {self.bib.where} "
                                 "does not have")
            label = f"[?{'; '.join(keys)}]"
            return self.out(f'<span class="citation missing">{escape(label)}</span>', f"**{label}**")
        self.cited += [k for k in keys if k not in self.cited]
        return self.out(f'<a class="citation" href="#ref-{escape(keys[0])}">{made}</a>', to_markdown(made))

    def section(self, heading: str = "References") -> str:
        """The works cited, as a section (HTML or Markdown); empty when nothing was cited."""
        from markupsafe import escape

        listed = self.bib.listed(self.cited) if self.bib else []
        if not listed:
            return ""
        if self.mode == "md":
            return f"## {heading}\n\n" + "\n".join(f"- {to_markdown(e)}" for _, e in listed)
        items = "".join(f'<li id="ref-{escape(k)}">{link_urls(e)}</li>' for k, e in listed)
        return (f'<section class="references" aria-labelledby="references"><h2 id="references">{escape(heading)}</h2>'
                f'<ul class="bibliography">{items}</ul></section>')
