"""`python -m claims build-paper`: the paper from content/front.md (title, authors, abstract) and
content/paper/*.md, every number from a claim, every citation from content/references.bib.

Outputs in build/paper/:
  paper.html       standalone: the style sheet inlined, charts inlined as SVG data, no request
  paper.md         Markdown with every claim reference and citation filled in; charts in figures/
  paper.pdf        rendered from paper.html with WeasyPrint when it (and Debian's pango) is
                   installed: page numbers, running head, vector charts, tagged (PDF/UA-1);
                   otherwise skipped with a note
  figures/*.svg    the charts paper.md points at

Phases, as for the site: gather (claims, content), render (in memory, unchanged outputs reused),
check (--strict refuses while any claim does not stand or any warning is raised), write.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

from claims.errors import BuildError
from claims.progress import log
from claims.project import Project
from paper_build.pdf import pdf_renderer
from site_build.common import figures
from site_build.common.content import Content, build_date
from site_build.common.outputs import Outputs, key_of
from site_build.common.records import Study, gather, model_line
from site_build.common.references import Citations, fmt_value, md_escape
from site_build.common.render import find_static, fingerprint, render
from site_build.common.report import Report, claim_warnings, refuse_or_warn


def paper_dir(project: Project) -> Path:
    return project.build_dir / "paper"


# ---- render ---------------------------------------------------------------------------------
def markdown(study: Study, content: Content, charts: dict[str, Any]) -> tuple[bytes, list[str]]:
    cit = Citations(study, "md", "", lambda claim_id: None, charts, bibliography=content.bibliography,
                    numbering=content.numbering([k for k, c in charts.items() if c]))
    parts = content.paper_parts(cit)
    text = "\n\n".join(p for p in (front_md(content, study), parts["abstract"] and f"## Abstract\n\n{parts['abstract']}",
                                   keywords_md(content), parts["body"], parts["references"], claims_table_md(study)) if p)
    return (text + "\n").encode("utf-8"), cit.warnings


def front_md(content: Content, study: Study) -> str:
    front = content.front
    lines = [f"# {md_escape(front.title)}"]
    if front.subtitle:
        lines.append(f"*{md_escape(front.subtitle)}*")
    if front.authors:
        lines.append("; ".join(md_escape(a.name + (f" ({a.affiliation})" if a.affiliation else "")) for a in front.authors))
    date = build_date(front, study.built_on)
    if date:
        lines.append(date)
    lines += [f"Model: {md_escape(model_line(m))}" for m in study.models]
    return "\n\n".join(lines)


def keywords_md(content: Content) -> str:
    words = content.front.keywords
    return f"**Keywords:** {md_escape(', '.join(words))}" if words else ""


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


SITE_ONLY = re.compile(r"\b(claim page|this page|the page|on the site|click|hover)\b", re.I)


def site_only_captions(study: Study, charts: dict[str, Any]) -> list[str]:
    """Captions the paper prints that speak of the site ("the claim page says..."): a warning each,
    naming the spec, since a caption is printed alike on the site and in the paper."""
    warnings = []
    for record in study.records:
        chart = charts.get(record.id)
        match = SITE_ONLY.search(chart.caption) if chart else None
        if match:
            warnings.append(f"{record.spec_path}:{record.spec.line('caption')}: caption: speaks of the site "
                            f"({match.group(0)!r}), but the paper prints it too; word it for both")
    return warnings


def data_uri(svg: bytes | None) -> str:
    return f"data:image/svg+xml;base64,{base64.b64encode(svg or b'').decode()}"


def standalone(project: Project, study: Study, content: Content, outputs: Outputs,
               charts: dict[str, Any]) -> tuple[bytes, list[str]]:
    cit = Citations(study, "html", "", lambda claim_id: f"#claim-{claim_id}", charts,
                    lambda rel: data_uri(outputs.read(rel)), content.bibliography,
                    content.numbering([k for k, c in charts.items() if c]))
    parts = content.paper_parts(cit)
    css = find_static(project, "site.css").read_text(encoding="utf-8")
    favicon = data_uri(find_static(project, "favicon.svg").read_bytes())
    html = render(project, "paper_standalone.html", front=content.front, css=css, favicon=favicon, paper=parts,
                  records=study.records, results_as_of=study.results_as_of, built_on=study.built_on,
                  date=build_date(content.front, study.built_on), models=[model_line(m) for m in study.models],
                  keywords_text=", ".join(content.front.keywords))
    return html, cit.warnings


# ---- the build --------------------------------------------------------------------------------
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
    charts, chart_warnings = figures.add_figures(outputs, study, "figures")
    chart_keys = {k: c.data() if c else None for k, c in charts.items()}
    base = [fingerprint(project), content.data(content.paper), key_of(study.data()), chart_keys,
            [outputs.outputs[p.wide].key for c in charts.values() if c for p in c.panels]]
    outputs.add("paper.md", key_of("md", *base), lambda: markdown(study, content, charts))
    html = outputs.add("paper.html", key_of("html", *base), lambda: standalone(project, study, content, outputs, charts))
    renderer, why_not = pdf_renderer()
    if renderer is not None:
        outputs.add("paper.pdf", key_of("pdf", html.key, renderer.version),
                    lambda: renderer.render(outputs.read("paper.html") or b"", out))
    else:
        log(f"note: paper.pdf skipped: {why_not}")
    warnings = (claim_warnings(study) + chart_warnings + content.bibliography.warnings + outputs.warnings
                + site_only_captions(study, charts))
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
