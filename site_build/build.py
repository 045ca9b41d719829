"""`python -m claims build-site`: the static site, in phases (mkdocs-style).

1 gather    check every claim without running anything (claims.verify, run=False), read the
            results and provenance they rest on, read content/
2 render    every page, chart and export in memory; an output whose inputs are unchanged since
            the last build is not rendered again (site_build.outputs)
3 check     warnings (a claim that is not verified, an unknown claim or figure in prose); under
            --strict any of them fails the build before a file is written
4 write     changed files only (atomically), files no longer produced removed, the manifest

A claim that is not verified is shown as failed / stale / error, never as standing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from claims.errors import BuildError
from claims.progress import log
from claims.project import Project
from site_build.outputs import Outputs, Stats
from site_build.pages import Content, SitePages, site_dir
from site_build.records import Study, gather
from site_build.render import fingerprint


@dataclass
class Report:
    out: Path
    stats: Stats
    warnings: list[str] = field(default_factory=list)
    gather_s: float = 0.0


def claim_warnings(study: Study) -> list[str]:
    """One line per required claim that does not stand, saying why."""
    lines = []
    for record in study.not_standing:
        why = "; ".join(record.outcome.problems) or record.outcome.reason or "no reason recorded"
        lines.append(f"{record.spec_path}: claim {record.id!r} is {record.status} (shown as such): {why}")
    return lines


def refuse_or_warn(what: str, warnings: list[str], strict: bool) -> None:
    if strict and warnings:
        lines = "\n".join(f"  {w}" for w in warnings)
        raise BuildError(f"{what} --strict: {len(warnings)} problem(s), nothing written:\n{lines}")
    for warning in warnings:
        log(f"warning: {warning}")


def build_site(project: Project, strict: bool = False) -> Report:
    started = time.perf_counter()
    study = gather(project)
    content = Content.read(project)
    gathered = time.perf_counter() - started
    out = site_dir(project)
    outputs = Outputs(out)
    SitePages(project, study, content, outputs, fingerprint(project)).add_all()
    warnings = claim_warnings(study) + outputs.warnings
    refuse_or_warn("build-site", warnings, strict)
    outputs.commit()
    return Report(out, outputs.stats, warnings, gathered)


def build(project: Project, strict: bool = False) -> Path:
    """Build build/site/; returns its path. Raises BuildError (under --strict: on any warning)."""
    report = build_site(project, strict=strict)
    s = report.stats
    log(f"site: rendered {s.rendered}, unchanged {s.reused} ({s.render_s:.2f}s rendering, "
        f"{report.gather_s:.2f}s reading claims)")
    return report.out
