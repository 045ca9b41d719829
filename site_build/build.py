"""`python -m claims build-site`: the static site, in phases (mkdocs-style).

1 gather    check every claim without running anything (claims.verify, run=False), read the
            results and provenance they rest on, read content/ (front matter, bibliography), and
            the claims as they stood at the last publish (claims.diff)
2 render    every page, chart and export in memory; an output whose inputs are unchanged since
            the last build is not rendered again (site_build.common.outputs)
3 check     warnings (a claim that is not verified, an unknown claim, figure or citation in
            prose); under --strict any of them fails the build before a file is written
4 write     changed files only (atomically), files no longer produced removed, the manifest

A claim that is not verified is shown as failed / stale / error, never as standing.
"""

from __future__ import annotations

import time
from pathlib import Path

from claims.progress import log
from claims.project import Project
from site_build.changes import since_last_publish
from site_build.common.content import Content
from site_build.common.outputs import Outputs
from site_build.common.records import gather
from site_build.common.render import fingerprint
from site_build.common.report import Report, claim_warnings, refuse_or_warn
from site_build.pages import SitePages, site_dir


def build_site(project: Project, strict: bool = False) -> Report:
    started = time.perf_counter()
    study = gather(project)
    content = Content.read(project)
    changes = since_last_publish(project, study)
    gathered = time.perf_counter() - started
    out = site_dir(project)
    outputs = Outputs(out)
    pages = SitePages(project, study, content, outputs, fingerprint(project), changes)
    pages.add_all()
    warnings = claim_warnings(study) + pages.warnings + outputs.warnings
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
