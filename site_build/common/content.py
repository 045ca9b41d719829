"""The prose of a project and its front matter, read once for both builders.

  content/front.md        the front matter (YAML between --- lines: title, short_title, subtitle,
                          authors, date, keywords, repository, bibliography, csl) and, as its
                          body, the abstract (Markdown with claim references and citations)
  content/*.md            site pages (index, story, methods, ...)
  content/paper/*.md      the paper's sections, in file-name order
  content/references.bib  the bibliography that `[@key]` cites (site_build.common.bibliography)

Without front.md, the title comes from index.md's `site_title` or the first paper section's
`title` (the older places), so a bare project still builds.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from claims.errors import BuildError
from claims.project import Project
from site_build.common import prose
from site_build.common.bibliography import Bibliography

DEFAULT_TITLE = "Claims-verified study"
NAV_ORDER = {"index": 0, "story": 10, "methods": 20}
FRONT = "front.md"


#: A link that can only lead to a web page: {repository}/... or http(s)://..., no quotes or spaces.
_COMMIT_URL = r"^(?:\{repository\}|https?://)[^\s\"'<>`\\]*$"


_PATTERN_HELP = {"commit_url": "must be {repository}/... or an http(s) address (a link a reader can follow safely)",
                 "repository": "must be an http(s) address"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Author(_Strict):
    name: str = Field(min_length=1, description="The author's name as printed.")
    affiliation: str = Field(default="", description="Institution, printed under the name.")
    email: str = Field(default="", description="Contact address, printed when given.")
    orcid: str = Field(default="", pattern=r"^$|^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$", description="ORCID iD.")


class FrontMatter(_Strict):
    """Title, authors and the rest, used by the site (header, footer) and the paper (title block,
    running head, PDF metadata)."""

    title: str = Field(min_length=1, description="The paper's full title.")
    short_title: str = Field(default="", description="Site title and the PDF's running head (default: title).")
    subtitle: str = Field(default="", description="A line under the title.")
    authors: list[Author] = Field(default_factory=list, description="In order, each {name, affiliation, ...}.")
    date: dt.date | None = Field(default=None, description="Date printed on the paper (default: the build date "
                                                            "from SOURCE_DATE_EPOCH, else none).")
    keywords: list[str] = Field(default_factory=list, description="Printed under the abstract and in PDF metadata.")
    repository: str | None = Field(default=None, pattern=r"^https?://\S+$",
                                   description="Repository URL: claim pages link the commit a result was made at.")
    commit_url: str = Field(default="{repository}/commit/{commit}", pattern=_COMMIT_URL,
                            description="How a commit's page is addressed: {repository}/... or an http(s) address.")
    bibliography: str = Field(default="references.bib",
                              description="BibTeX file in content/ that [@key] cites (a path inside content/).")
    csl: str | None = Field(default=None,
                            description="A CSL style file in content/ (default: Harvard author-date, shipped with "
                                        "citeproc-py).")

    @field_validator("bibliography", "csl")
    @classmethod
    def _inside_content(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith(("/", "~")) or ".." in re.split(r"[/\\]", value) or "\0" in value):
            raise ValueError(f"{value!r}: must be a file inside content/ (a relative path without ..)")
        return value

    @property
    def running_head(self) -> str:
        return self.short_title or self.title

    def commit_link(self, commit: str | None) -> str | None:
        if not self.repository or not commit:
            return None
        link = self.commit_url.format(repository=self.repository.rstrip("/"), commit=commit)
        return link if re.match(r"^https?://[^\s\"'<>`]+$", link) else None


@dataclass
class Content:
    """The prose of a project: front matter and abstract, top-level pages, the paper's sections,
    and the bibliography they cite."""

    front: FrontMatter
    abstract: prose.Prose | None
    pages: list[prose.Prose]
    paper: list[prose.Prose]
    bibliography: Bibliography

    @classmethod
    def read(cls, project: Project) -> Content:
        folder = project.content_dir
        pages = [prose.read(p, project.rel(p)) for p in sorted(folder.glob("*.md")) if p.name != FRONT] \
            if folder.is_dir() else []
        shards = sorted((folder / "paper").glob("*.md")) if (folder / "paper").is_dir() else []
        pages.sort(key=lambda p: (p.meta.get("nav", NAV_ORDER.get(p.path.stem, 50)), p.path.stem))
        paper = [prose.read(p, project.rel(p)) for p in shards]
        abstract = prose.read(folder / FRONT, project.rel(folder / FRONT)) if (folder / FRONT).is_file() else None
        front = front_matter(abstract, pages, paper)
        texts = [p for p in [abstract, *pages, *paper] if p is not None]
        for name in ("bibliography", "csl"):  # a link inside content/ may still lead out of it
            value = getattr(front, name)
            if value and not (folder / value).resolve().is_relative_to(folder.resolve()):
                line = abstract.lines.get(name, 1) if abstract else 1
                raise BuildError(f"{project.rel(folder / FRONT)}:{line}: {name}: {value!r} leads outside "
                                 f"{project.rel(folder)}/: keep it inside the project's content")
        bib = Bibliography.load(folder / front.bibliography, project.rel(folder / front.bibliography),
                                folder / front.csl if front.csl else None, texts)
        return cls(front, abstract if abstract and abstract.body.strip() else None, pages, paper, bib)

    @property
    def index(self) -> prose.Prose | None:
        return next((p for p in self.pages if p.path.stem == "index"), None)

    @property
    def site_title(self) -> str:
        return self.front.running_head

    @property
    def paper_title(self) -> str:
        return self.front.title

    def paper_parts(self, cit: Any) -> dict[str, str]:
        """The paper rendered with one rendering's references (`cit`: HTML or Markdown): its
        abstract, its sections as one document, and the works they cite."""
        from site_build.common.xref import number_headings, number_md_headings

        abstract = prose.document([self.abstract], cit) if self.abstract else ""
        body = prose.document(self.paper, cit)
        numbers = cit.numbering.paper_numbers if cit.numbering is not None else {}
        body = number_md_headings(body, numbers) if cit.mode == "md" else number_headings(body, numbers)
        return {"abstract": abstract, "body": body, "references": cit.works.section()}

    def numbering(self, charted: list[str]) -> Any:
        """Figure and section numbers shared by the site and the paper (site_build.common.xref)."""
        from site_build.common.xref import numbering

        return numbering(self.paper, self.pages, charted)

    def data(self, pages: list[prose.Prose] | None = None) -> list[Any]:
        """What renderings depend on (for output keys)."""
        chosen = pages if pages is not None else [*self.pages, *self.paper]
        return [self.front.model_dump(mode="json"), self.bibliography.fingerprint,
                [[p.rel, p.meta, p.body] for p in [*([self.abstract] if self.abstract else []), *chosen]]]


def front_matter(front: prose.Prose | None, pages: list[prose.Prose], paper: list[prose.Prose]) -> FrontMatter:
    """content/front.md's front matter, else a title from the older places."""
    if front is None:
        index = next((p for p in pages if p.path.stem == "index"), None)
        site = str(index.meta.get("site_title", "")) if index else ""
        title = str(paper[0].meta.get("title", "")) if paper else ""
        return FrontMatter(title=title or site or DEFAULT_TITLE, short_title=site)
    try:
        return FrontMatter.model_validate(front.meta)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            line = front.lines.get(str(err["loc"][0]), 1) if err["loc"] else 1
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch" and field in _PATTERN_HELP:
                msg = f"{str(err['input'])[:60]!r}: {_PATTERN_HELP[field]}"
            lines.append(f"{front.rel}:{line}: {field}: {msg}")
        raise BuildError("\n".join(lines)) from None


def build_date(front: FrontMatter, built_on: str | None) -> str | None:
    """The date the paper carries: the front matter's, else the build's (SOURCE_DATE_EPOCH)."""
    return front.date.isoformat() if front.date else built_on
