"""The site's pages, each registered with the key of what it is made from.

  index.html                     content/index.md + a card per headline claim + every claim
  <name>.html                    every other content/<name>.md (story, methods, ...)
  paper.html                     the front matter, content/paper/*.md in order, references, claims
  changes.html                   what changed in the claims since the last publish (claims.diff)
  claims/<id>.html               one page per claim: statement, estimate, control, chart, provenance
  data/<experiment>/<name>.json  the result and sidecar behind each claim (files up to DATA_CAP)
  source/<path>.html             the experiment code each result was made by (sha256 shown)
  figures/<id>[-k][.narrow].svg  charts (site_build.common.figures)
  claims.json                    the machine-readable export (site_build.export)
  static/site.css                the style sheet (no CDN)
  static/search.js, search.json  the search box's script and index (site_build.search; local files)
  paper/paper.{html,md,pdf}      the standalone paper, when build-paper has run before
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from claims.project import Project
from claims.provenance import sha256_file
from site_build import search
from site_build.common import figures, prose, xref
from site_build.common.content import Content, build_date
from site_build.common.outputs import Outputs, key_of
from site_build.common.records import Study, model_line, source_files
from site_build.common.references import Citations
from site_build.common.render import find_static, render
from site_build.dossier import dossier, source_href
from site_build.export import export
from site_build.features import add_feature_pages

PAPER_FILES = ("paper.html", "paper.md", "paper.pdf")
#: Result and sidecar files larger than this are not copied into the site (the page says where they are).
DATA_CAP = 512 * 1024


def root_of(rel: str) -> str:
    return "../" * rel.count("/")


def data_href(result_path: str) -> str:
    return "data/" + result_path.removeprefix("artifacts/")


class SitePages:
    """Registers every output of the site with `outputs`; nothing is written here."""

    def __init__(self, project: Project, study: Study, content: Content, outputs: Outputs, base_key: str,
                 changes: Any = None):
        self.project, self.study, self.content, self.outputs = project, study, content, outputs
        self.base, self.changes = base_key, changes
        self.claims_key = key_of(study.data())
        self.charts: dict[str, figures.Chart | None] = {}
        self.numbering = xref.Numbering()
        self.data: dict[str, str | None] = {}  # result or sidecar path -> its copy in the site (None: too large)
        self.warnings: list[str] = []
        self.nav = [(p.title if p.path.stem != "index" else "Overview", f"{p.path.stem}.html") for p in content.pages]
        if not content.index:
            self.nav.insert(0, ("Overview", "index.html"))
        if content.paper:
            self.nav.append(("Paper", "paper.html"))
        if changes is not None:
            self.nav.append(("Changes", "changes.html"))
        self.paper_dir = project.build_dir / "paper"

    def site(self, rel: str, title: str) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.study.records:
            counts[r.status] = counts.get(r.status, 0) + 1
        front = self.content.front
        return {"title": self.content.site_title, "nav": self.nav, "current": rel, "page_title": title,
                "results_as_of": self.study.results_as_of, "built_on": self.study.built_on,
                "counts": sorted(counts.items()), "root": root_of(rel), "models": [model_line(m) for m in self.study.models],
                "authors": [a.name for a in front.authors], "repository": front.repository}

    def link(self, rel: str) -> Callable[[str], str]:
        return lambda claim_id: f"{root_of(rel)}claims/{claim_id}.html"

    def citations(self, rel: str) -> Citations:
        return Citations(self.study, "html", rel, self.link(rel), self.charts, lambda path: root_of(rel) + path,
                         self.content.bibliography, self.numbering, page=rel)

    def page_key(self, *parts: Any) -> str:
        return key_of(self.base, self.nav, self.content.front.model_dump(mode="json"), self.study.models, *parts)

    # ---- outputs ----------------------------------------------------------------------------
    def add_all(self) -> None:
        self.charts, self.warnings = figures.add_figures(self.outputs, self.study, "figures")
        self.numbering = xref.numbering(self.content.paper, self.content.pages, [k for k, c in self.charts.items() if c])
        self.warnings += self.content.bibliography.warnings
        for name in ("site.css", "favicon.svg", "search.js"):
            path = find_static(self.project, name)
            self.outputs.add(f"static/{name}", key_of("static", sha256_file(path)), path.read_bytes)
        self.add_sources()
        self.add_data()
        for record in self.study.records:
            self.add_claim(record)
        for page in self.content.pages:
            self.add_prose_page(page)
        add_feature_pages(self)  # SAE feature dashboards (site_build/features.py)
        if not self.content.index:
            self.add_index(None)
        if self.content.paper:
            self.add_paper()
        if self.changes is not None:
            self.add_changes()
        self.add_search()
        charts = {k: c.data() if c else None for k, c in self.charts.items()}
        self.outputs.add("claims.json", key_of("export", self.claims_key, charts),
                         lambda: export(self.study, self.charts))

    def add_search(self) -> None:
        """search.json and static/search-index.js: the index the header's search box reads."""
        index = search.records(self.study, self.content)
        key = key_of("search", index)
        self.outputs.add("search.json", key, lambda: search.search_json(index))
        self.outputs.add("static/search-index.js", key, lambda: search.search_script(index))

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

    def add_data(self) -> None:
        """Copies of the results and sidecars behind fresh claims (small files only)."""
        for record in self.study.records:
            for node in record.nodes.values():
                if not node.fresh:
                    continue
                for relpath in (node.result_path, node.provenance_path):
                    path = self.project.root / relpath
                    if relpath in self.data or not path.is_file():
                        continue
                    if path.stat().st_size > DATA_CAP:
                        self.data[relpath] = None
                        continue
                    self.data[relpath] = data_href(relpath)
                    self.outputs.add(data_href(relpath), key_of("copy", sha256_file(path)), path.read_bytes)

    def add_claim(self, record: Any) -> None:
        rel = f"claims/{record.id}.html"
        chart = self.charts.get(record.id)
        root = root_of(rel)

        def make() -> bytes:
            figure = figures.html(chart, lambda p: root + p, self.numbering.figure_label(record.id),
                                  "" if record.standing else f'<span class="badge badge-{record.status}">'
                                  f'{record.status.replace("_", " ")}</span>', anchor=f"figure-{record.id}") if chart else ""
            data = dossier(self.project, record, root, figure, self.data, self.content.front,
                           self.numbering.figure_label(record.id))
            deps = [self.study.get(d) for d in record.outcome.depends_on]
            return render(self.project, "claim.html", site=self.site(rel, record.outcome.title), d=data,
                          depends=[d for d in deps if d is not None])

        deps = [self.study.get(d).outcome.status for d in record.outcome.depends_on if self.study.get(d)]
        self.outputs.add(rel, self.page_key("claim", record.data(), chart.data() if chart else None, deps,
                                            self.numbering.figures.get(record.id),
                                            _source_state(self.project, record), self.data), make)

    def prose_key(self, *parts: Any) -> str:
        charts = {k: c.data() if c else None for k, c in self.charts.items()}
        numbers = [self.numbering.figures, {k: v.__dict__ for k, v in self.numbering.sections.items()}]
        return self.page_key(*parts, self.claims_key, charts, self.content.bibliography.fingerprint, numbers)

    def add_prose_page(self, page: prose.Prose) -> None:
        if page.path.stem == "index":
            self.add_index(page)
            return
        rel = f"{page.path.stem}.html"

        def make() -> tuple[bytes, list[str]]:
            cit = self.citations(rel)
            html = prose.document([page], cit) + cit.works.section()
            return render(self.project, "page.html", site=self.site(rel, page.title), body=html), cit.warnings

        self.outputs.add(rel, self.prose_key("page", page.rel, page.meta, page.body), make)

    def add_index(self, page: prose.Prose | None) -> None:
        rel = "index.html"

        def make() -> tuple[bytes, list[str]]:
            cit = self.citations(rel)
            html = "" if page is None else prose.document([page], cit) + cit.works.section()
            records = self.study.records
            return render(self.project, "index.html", site=self.site(rel, self.content.site_title), body=html,
                          headline=[r for r in records if r.outcome.headline and (r.required or r.outcome.waiver)],
                          required=[r for r in records if r.required],
                          listed=[r for r in records if not r.required]), cit.warnings

        content = [page.rel, page.meta, page.body] if page else None
        self.outputs.add(rel, self.prose_key("index", content), make)

    def add_paper(self) -> None:
        rel = "paper.html"
        downloads = self.add_paper_downloads()

        def make() -> tuple[bytes, list[str]]:
            cit = self.citations(rel)
            parts = self.content.paper_parts(cit)
            return render(self.project, "paper.html", site=self.site(rel, self.content.paper_title), paper=parts,
                          front=self.content.front, date=build_date(self.content.front, self.study.built_on),
                          records=self.study.records, downloads=downloads), cit.warnings

        self.outputs.add(rel, self.prose_key("paper", self.content.data(self.content.paper), downloads), make)

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

    def add_changes(self) -> None:
        rel = "changes.html"
        changes = self.changes

        def make() -> bytes:
            return render(self.project, "changes.html", site=self.site(rel, "Changes since the last publish"),
                          c=changes)

        self.outputs.add(rel, self.page_key("changes", changes.data()), make)


def _source_state(project: Project, record: Any) -> list[Any]:
    """Whether each code file still matches the recorded hash (the claim page says so)."""
    state = []
    for node in record.nodes.values():
        for relpath, sha in sorted(node.code.items()):
            path = project.root / relpath
            state.append([relpath, sha256_file(path) == sha if path.is_file() else None])
    return state


def site_dir(project: Project) -> Path:
    return project.build_dir / "site"
