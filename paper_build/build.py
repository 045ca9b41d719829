"""`python -m claims build-paper`: the paper from content/paper/*.md, every number from a claim.

Outputs in build/paper/:
  paper.html       standalone: the style sheet inlined, charts inlined as SVG data, no request
  paper.md         Markdown with every claim reference filled in; charts in figures/*.svg
  paper.pdf        rendered from paper.html with WeasyPrint when it (and Debian's pango) is
                   installed; otherwise skipped with a note
  figures/<id>.svg the charts paper.md points at

Shards are rendered in file-name order (01-introduction.md, 02-methods.md, ...) as one document,
so footnotes and heading anchors are unique. A claim that is not verified shows its status
beside it; `--strict` refuses to build while any claim does not stand or any warning is raised.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from claims.errors import BuildError
from claims.progress import log
from claims.project import Project
from paper_build.pdf import pdf_renderer
from site_build import prose
from site_build.build import Report, claim_warnings, refuse_or_warn
from site_build.outputs import Outputs, key_of
from site_build.pages import Content, add_figures, prose_html
from site_build.records import ClaimRecord, Study, gather
from site_build.references import Citations, fmt_value, md_escape
from site_build.render import find_static, fingerprint, render


def paper_dir(project: Project) -> Path:
    return project.build_dir / "paper"


def markdown(study: Study, content: Content, figures: dict[str, str | None]) -> tuple[bytes, list[str]]:
    def figure(record: ClaimRecord, number: int) -> tuple[str, str] | None:
        rel = figures.get(record.id)
        return (rel, f"Chart for the claim: {record.outcome.title}") if rel else None

    cit = Citations(study, "md", "", lambda claim_id: None, figure)
    parts = []
    for shard in content.paper:
        cit.where = shard.rel
        parts.append(prose.expand(shard, cit).strip())
    parts.append(claims_table_md(study))
    return ("\n\n".join(parts) + "\n").encode("utf-8"), cit.warnings


def claims_table_md(study: Study) -> str:
    rows = ["## Appendix: the claims", "",
            "Every number in this paper is one of these claims, rendered from its artifact at build time.", "",
            "| Claim | Value | Interval | n | Control | Status | Provenance key |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in study.records:
        o, spec = r.outcome, r.value_format
        value = fmt_value(o.value, spec) if o.value is not None else "–"
        interval = f"{fmt_value(o.level, '.0%')} CI {fmt_value(o.ci[0], spec)} to {fmt_value(o.ci[1], spec)}" if o.ci else "–"
        control = o.verdict
        if o.control.get("value") is not None:
            control = f"{fmt_value(o.control['value'], spec)} {control}"
        if o.expect == "null":
            control += " (null claim)"
        if not r.required:
            value, interval, control = "–", "–", f"{o.status.replace('_', ' ')}: {o.reason}"
        main = r.nodes.get("main")
        key = f"`{r.provenance_key[:16]}`" if main is not None and main.fresh and r.provenance_key else "–"
        cells = [f"{md_escape(o.title)} (`{o.id}`)", value, interval, str(o.n) if o.n is not None else "–",
                 md_escape(control), f"**{o.status.replace('_', ' ')}**", key]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def standalone(project: Project, study: Study, content: Content, outputs: Outputs,
               figures: dict[str, str | None]) -> tuple[bytes, list[str]]:
    def data_uri(claim_id: str) -> str | None:
        svg = outputs.read(figures[claim_id]) if figures.get(claim_id) else None
        return f"data:image/svg+xml;base64,{base64.b64encode(svg).decode()}" if svg else None

    body, warnings = prose_html(study, content.paper, "", data_uri, lambda claim_id: f"#claim-{claim_id}")
    css = find_static(project, "site.css").read_text(encoding="utf-8")
    favicon = "data:image/svg+xml;base64," + base64.b64encode(find_static(project, "favicon.svg").read_bytes()).decode()
    html = render(project, "paper_standalone.html", title=content.paper_title, css=css, favicon=favicon, body=body,
                  records=study.records, results_as_of=study.results_as_of, built_on=study.built_on)
    return html, warnings


def build_paper(project: Project, strict: bool = False) -> Report:
    started = time.perf_counter()
    study = gather(project)
    content = Content.read(project)
    if not content.paper:
        raise BuildError(f"{project.rel(project.content_dir / 'paper')}/: no paper sections "
                         "(write content/paper/01-introduction.md, 02-methods.md, ...)")
    gathered = time.perf_counter() - started
    out = paper_dir(project)
    outputs = Outputs(out)
    figures = add_figures(outputs, study, "figures")
    figure_keys = {rel: outputs.outputs[rel].key for rel in figures.values() if rel}
    base = [fingerprint(project), content.data(content.paper), key_of(study.data()), figures, figure_keys]
    outputs.add("paper.md", key_of("md", *base), lambda: markdown(study, content, figures))
    html = outputs.add("paper.html", key_of("html", *base),
                       lambda: standalone(project, study, content, outputs, figures))
    renderer, why_not = pdf_renderer()
    if renderer is not None:
        html_bytes = outputs.read("paper.html") or b""
        outputs.add("paper.pdf", key_of("pdf", html.key, renderer.version),
                    lambda: renderer.render(html_bytes, out))
    else:
        log(f"note: paper.pdf skipped: {why_not}")
    warnings = claim_warnings(study) + outputs.warnings
    refuse_or_warn("build-paper", warnings, strict)
    outputs.commit()
    return Report(out, outputs.stats, warnings, gathered)


def build(project: Project, strict: bool = False) -> Path:
    """Build build/paper/; returns its path. Raises BuildError (under --strict: on any warning)."""
    report = build_paper(project, strict=strict)
    s = report.stats
    made = ", ".join(sorted(p for p in ("paper.html", "paper.md", "paper.pdf") if (report.out / p).is_file()))
    log(f"paper: {made} (rendered {s.rendered}, unchanged {s.reused}, {s.render_s:.2f}s)")
    return report.out
