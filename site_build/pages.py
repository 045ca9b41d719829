"""The site's pages, each registered with the key of what it is made from.

  index.html                     content/index.md + a card per headline claim + every claim
  <name>.html                    every other content/<name>.md (story, methods, ...)
  paper.html                     content/paper/*.md in order, with the claims table
  claims/<id>.html               one page per claim: statement, estimate, control, chart, provenance
  source/<path>.html             the experiment code each result was made by (sha256 shown)
  figures/<id>.svg               charts (site_build.figures)
  claims.json                    the machine-readable export (site_build.export)
  static/site.css                the style sheet (no CDN, no script)
  paper/paper.{html,md,pdf}      the standalone paper, when build-paper has run before
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claims.errors import BuildError
from claims.project import Project
from claims.provenance import package_versions, sha256_file
from site_build import figures as figs
from site_build import prose
from site_build.dossier import dossier, source_href
from site_build.export import export
from site_build.features import add_feature_pages
from site_build.outputs import Outputs, key_of
from site_build.records import Study, source_files
from site_build.references import Citations
from site_build.render import find_static, render

DEFAULT_TITLE = "Claims-verified study"
NAV_ORDER = {"index": 0, "story": 10, "methods": 20}
PAPER_FILES = ("paper.html", "paper.md", "paper.pdf")


@dataclass
class Content:
    """The prose of a project: top-level pages and the paper's section shards."""

    pages: list[prose.Prose]
    paper: list[prose.Prose]

    @classmethod
    def read(cls, project: Project) -> Content:
        folder = project.content_dir
        pages = [prose.read(p, project.rel(p)) for p in sorted(folder.glob("*.md"))] if folder.is_dir() else []
        shards = sorted((folder / "paper").glob("*.md")) if (folder / "paper").is_dir() else []
        pages.sort(key=lambda p: (p.meta.get("nav", NAV_ORDER.get(p.path.stem, 50)), p.path.stem))
        return cls(pages, [prose.read(p, project.rel(p)) for p in shards])

    @property
    def index(self) -> prose.Prose | None:
        return next((p for p in self.pages if p.path.stem == "index"), None)

    @property
    def site_title(self) -> str:
        index = self.index
        return str(index.meta.get("site_title", DEFAULT_TITLE)) if index else DEFAULT_TITLE

    @property
    def paper_title(self) -> str:
        return str(self.paper[0].meta.get("title", "Paper")) if self.paper else "Paper"

    def data(self, pages: list[prose.Prose] | None = None) -> list[Any]:
        return [[p.rel, p.meta, p.body] for p in (pages if pages is not None else [*self.pages, *self.paper])]


def root_of(rel: str) -> str:
    return "../" * rel.count("/")


def prose_html(study: Study, shards: list[prose.Prose], root: str,
               figure_src: Callable[[str], str | None], link: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """Shards rendered as one document (footnotes and anchors unique), with their warnings."""
    def figure(record: Any, number: int) -> tuple[str, str] | None:
        src = figure_src(record.id)
        return (src, f"Chart for the claim: {record.outcome.title}") if src else None

    cit = Citations(study, "html", "", link, figure)
    parts = []
    for shard in shards:
        cit.where = shard.rel
        parts.append(prose.expand(shard, cit))
    return prose.to_html("\n\n".join(parts), cit), cit.warnings


class SitePages:
    """Registers every output of the site with `outputs`; nothing is written here."""

    def __init__(self, project: Project, study: Study, content: Content, outputs: Outputs, base_key: str):
        self.project, self.study, self.content, self.outputs = project, study, content, outputs
        self.base = base_key
        self.claims_key = key_of(study.data())
        self.figures: dict[str, str | None] = {}
        self.nav = [(p.title if p.path.stem != "index" else "Overview", f"{p.path.stem}.html") for p in content.pages]
        if not content.index:
            self.nav.insert(0, ("Overview", "index.html"))
        if content.paper:
            self.nav.append(("Paper", "paper.html"))
        self.paper_dir = project.build_dir / "paper"

    def site(self, rel: str, title: str) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.study.records:
            counts[r.status] = counts.get(r.status, 0) + 1
        return {"title": self.content.site_title, "nav": self.nav, "current": rel, "page_title": title,
                "results_as_of": self.study.results_as_of, "built_on": self.study.built_on,
                "counts": sorted(counts.items()), "root": root_of(rel)}

    def link(self, rel: str) -> Callable[[str], str]:
        return lambda claim_id: f"{root_of(rel)}claims/{claim_id}.html"

    def figure_src(self, rel: str) -> Callable[[str], str | None]:
        return lambda claim_id: (root_of(rel) + self.figures[claim_id]) if self.figures.get(claim_id) else None

    def page_key(self, *parts: Any) -> str:
        return key_of(self.base, self.nav, self.content.site_title, *parts)

    # ---- outputs ----------------------------------------------------------------------------
    def add_all(self) -> None:
        self.figures = add_figures(self.outputs, self.study, "figures")
        for name in ("site.css", "favicon.svg"):
            path = find_static(self.project, name)
            self.outputs.add(f"static/{name}", key_of("static", sha256_file(path)), path.read_bytes)
        self.add_sources()
        for record in self.study.records:
            self.add_claim(record)
        for page in self.content.pages:
            self.add_prose_page(page)
        add_feature_pages(self)  # SAE feature dashboards (site_build/features.py)
        if not self.content.index:
            self.add_index(None)
        if self.content.paper:
            self.add_paper()
        self.outputs.add("claims.json", key_of("export", self.claims_key, self.figures),
                         lambda: export(self.study, self.figures))

    def add_sources(self) -> None:
        users: dict[str, list[str]] = {}
        for record in self.study.records:
            for node in record.nodes.values():
                for relpath in node.code:
                    users.setdefault(relpath, []).append(record.id)
        for relpath, path in source_files(self.study).items():
            rel = source_href(relpath)
            used_by = sorted(set(users.get(relpath, [])))
            text = path.read_text(encoding="utf-8", errors="replace")
            sha = sha256_file(path)

            def make(rel: str = rel, relpath: str = relpath, text: str = text, sha: str = sha,
                     used_by: list[str] = used_by) -> bytes:
                return render(self.project, "source.html", site=self.site(rel, relpath), path=relpath,
                              sha256=sha, lines=text.splitlines(), used_by=used_by)

            self.outputs.add(rel, self.page_key("source", relpath, sha, used_by), make)

    def add_claim(self, record: Any) -> None:
        rel = f"claims/{record.id}.html"
        figure = self.figures.get(record.id)
        root = root_of(rel)

        def make() -> bytes:
            data = dossier(self.project, record, root, root + figure if figure else None)
            deps = [self.study.get(d) for d in record.outcome.depends_on]
            return render(self.project, "claim.html", site=self.site(rel, record.outcome.title), d=data,
                          depends=[d for d in deps if d is not None])

        deps = [self.study.get(d).outcome.status for d in record.outcome.depends_on if self.study.get(d)]
        self.outputs.add(rel, self.page_key("claim", record.data(), figure, deps, _source_state(self.project, record)),
                         make)

    def add_prose_page(self, page: prose.Prose) -> None:
        if page.path.stem == "index":
            self.add_index(page)
            return
        rel = f"{page.path.stem}.html"

        def make() -> tuple[bytes, list[str]]:
            html, warnings = prose_html(self.study, [page], root_of(rel), self.figure_src(rel), self.link(rel))
            return render(self.project, "page.html", site=self.site(rel, page.title), body=html), warnings

        self.outputs.add(rel, self.page_key("page", page.rel, page.meta, page.body, self.claims_key, self.figures), make)

    def add_index(self, page: prose.Prose | None) -> None:
        rel = "index.html"

        def make() -> tuple[bytes, list[str]]:
            html, warnings = ("", []) if page is None else prose_html(
                self.study, [page], "", self.figure_src(rel), self.link(rel))
            records = self.study.records
            return render(self.project, "index.html", site=self.site(rel, self.content.site_title), body=html,
                          headline=[r for r in records if r.outcome.headline and r.required],
                          required=[r for r in records if r.required],
                          listed=[r for r in records if not r.required]), warnings

        content = [page.rel, page.meta, page.body] if page else None
        self.outputs.add(rel, self.page_key("index", content, self.claims_key), make)

    def add_paper(self) -> None:
        rel = "paper.html"
        downloads = self.add_paper_downloads()

        def make() -> tuple[bytes, list[str]]:
            html, warnings = prose_html(self.study, self.content.paper, "", self.figure_src(rel), self.link(rel))
            return render(self.project, "paper.html", site=self.site(rel, self.content.paper_title), body=html,
                          records=self.study.records, downloads=downloads, standalone=False), warnings

        self.outputs.add(rel, self.page_key("paper", self.content.data(self.content.paper), self.claims_key, self.figures, downloads),
                         make)

    def add_paper_downloads(self) -> list[str]:
        """Copies of build/paper/ (when build-paper has run), linked from the paper page."""
        made = []
        for name in PAPER_FILES:
            path = self.paper_dir / name
            if path.is_file():
                rel = f"paper/{name}"
                self.outputs.add(rel, key_of("copy", sha256_file(path)), path.read_bytes)
                made.append(rel)
        figures_dir = self.paper_dir / "figures"
        if "paper/paper.md" in made and figures_dir.is_dir():
            for path in sorted(figures_dir.glob("*.svg")):
                self.outputs.add(f"paper/figures/{path.name}", key_of("copy", sha256_file(path)), path.read_bytes)
        return made


def _source_state(project: Project, record: Any) -> list[Any]:
    """Whether each code file still matches the recorded hash (the claim page says so)."""
    state = []
    for node in record.nodes.values():
        for relpath, sha in sorted(node.code.items()):
            path = project.root / relpath
            state.append([relpath, sha256_file(path) == sha if path.is_file() else None])
    return state


FIGURE_PACKAGES = ("altair", "vl-convert-python")


def add_figures(outputs: Outputs, study: Study, folder: str) -> dict[str, str | None]:
    """Render each claim's chart (when its result is fresh); returns claim id -> output path or None."""
    code, packages = figs.code_hash(), package_versions(FIGURE_PACKAGES)
    made: dict[str, str | None] = {}
    for record in study.records:
        name = figs.chosen(record.outcome)
        main = record.nodes.get("main")
        if name is None or main is None or not main.fresh:
            made[record.id] = None
            continue
        rel = f"{folder}/{record.id}.svg"

        def make(record: Any = record, name: str = name) -> tuple[bytes | None, list[str]]:
            try:
                svg = figs.render(name, record.outcome, record.result("main"), record.result("control"))
            except figs.FigureDataError as exc:
                return None, [f"{record.spec_path}: figure: {exc.message}"]
            except ValueError as exc:  # vega-lite refused the chart
                raise BuildError(f"{record.spec_path}: figure {name!r} could not be drawn: {exc}") from None
            return svg.encode("utf-8"), []

        outputs.add(rel, key_of("figure", code, packages, name, record.data()), make)
        made[record.id] = rel if outputs.exists(rel) else None
    return made


def site_dir(project: Project) -> Path:
    return project.build_dir / "site"
