"""The paper: standalone HTML (style and charts inlined), Markdown with values filled in, a PDF
where WeasyPrint loads; failed claims shown as failed, and --strict refusing them."""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.errors import BuildError
from paper_build.build import build_paper
from paper_build.pdf import pdf_renderer
from site_build import sample
from site_build.build import build_site
from tests.test_site import FAILING, XSS, make


@pytest.fixture
def project(tmp_path):
    return make(tmp_path)


def test_paper_outputs(project):
    report = build_paper(project)
    out = project.build_dir / "paper"
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    charts = [f"figures/{c}{v}.svg" for c in ("detect-vs-steer", "probe-accuracy", "probe-chance", "probe-vs-random",
                                                  "probe-vs-random-2", "steering-slope") for v in ("", ".narrow")]
    expected = [".manifest.json", *charts, "paper.html", "paper.md"]
    if pdf_renderer()[0] is not None:
        expected.append("paper.pdf")
        assert (out / "paper.pdf").read_bytes().startswith(b"%PDF-")
    assert names == sorted(expected)
    assert report.warnings == []


def test_markdown_has_numbers_filled_in(project):
    build_paper(project)
    md = (project.build_dir / "paper" / "paper.md").read_text()
    assert "{{" not in md and "{%" not in md
    assert "with 75.2% held-out accuracy (95% CI 71.0% to 79.5%, n = 400)." in md
    assert md.startswith("# A sample paper: detectors and levers\n\n*Every number bound to a verified artifact.*\n\n"
                         "Ada Sample (Sample Institute); Bo Example\n\n## Abstract\n\nWe test a probe and a lever.")
    assert ("![Figure 1. The dot is the point estimate" in md or "![Figure 1. Dots are point estimates" in md)
    assert "](figures/probe-accuracy.svg)" in md
    assert "Steering follows (Li *et al.*, 2023)." in md and "The method follows (Gao *et al.*, 2025)." in md
    assert "## References\n\n- Gao, C. *et al.* (2025) “H-Neurons: On the Existence" in md
    assert md.index("## References") < md.index("## Appendix: the claims")
    assert "Steering moves compliance by 3.23 pp per alpha.[^s]" in md and "[^s]: With 50 seeds." in md
    assert re.search(r"\| Probe accuracy \(`probe-accuracy`\) \| 75\.2% \| 95% CI 71\.0% to 79\.5% \| 400 \| "
                     r"45\.8% beats control \| \*\*verified\*\* \| `[0-9a-f]{16}` \|", md)
    assert "| blocked: needs the paper profile (GPU and hub access) | **blocked** |" in md


def test_standalone_html_inlines_style_and_charts(project):
    build_paper(project)
    html = (project.build_dir / "paper" / "paper.html").read_text()
    assert "<style>" in html and "--verified" in html
    assert '<link rel="stylesheet"' not in html
    srcs = re.findall(r'(?:src|srcset)="([^"]*)"', html)
    assert len(srcs) == 4 and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)  # wide and narrow
    outside = re.findall(r'href="(?!#|data:)([^"]*)"', html)
    assert outside == ["https://arxiv.org/abs/2512.01797", "https://arxiv.org/abs/2306.03341"]  # the works cited
    assert '<a class="citation" href="#ref-li2023iti">(Li <i>et al.</i>, 2023)</a>' in html
    assert '<li id="ref-li2023iti">' in html
    assert '<a href="#claim-probe-accuracy">' in html and 'id="claim-probe-accuracy"' in html
    html5lib = pytest.importorskip("html5lib")
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


def test_failed_claim_is_marked_and_strict_refuses(tmp_path):
    content = {"content/paper/03-limits.md": "## Limits\n\n{{ claim('probe-near-perfect') }}\n"}
    project = make(tmp_path, {"probe-near-perfect": FAILING}, content)
    build_paper(project)
    md = (project.build_dir / "paper" / "paper.md").read_text()
    assert "The probe reaches 75.2% accuracy. **[failed]**" in md
    html = (project.build_dir / "paper" / "paper.html").read_text()
    assert re.search(r'<span class="claim-ref status-failed">The probe reaches [^<]*'
                     r'<a class="badge badge-failed" href="#claim-probe-near-perfect">failed</a>', html)
    shutil.rmtree(project.build_dir / "paper")
    with pytest.raises(BuildError, match="build-paper --strict: 1 problem"):
        build_paper(project, strict=True)
    assert not (project.build_dir / "paper").exists()
    result = CliRunner().invoke(cli, ["--project", str(project.root), "build-paper", "--strict"])
    assert result.exit_code == 1 and "claim 'probe-near-perfect' is failed" in result.output


def test_script_in_statement_is_text_in_paper(tmp_path):
    project = make(tmp_path, {"xss": XSS}, {"content/paper/03-x.md": "## X\n\n{{ claim('xss') }}\n"})
    build_paper(project)
    html = (project.build_dir / "paper" / "paper.html").read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    md = (project.build_dir / "paper" / "paper.md").read_text()
    assert r"\<script\>alert(\"pwned\")\</script\>" in md or r"\<script\>alert(" in md


def test_no_paper_sections_is_a_clear_error(tmp_path):
    content = {k: v for k, v in sample.CONTENT.items() if not k.startswith("content/paper/")}
    project = sample.create(tmp_path / "proj", sample.SPECS, content)
    with pytest.raises(BuildError, match=r"content/paper/: no paper sections"):
        build_paper(project)


def test_paper_rebuild_is_incremental_and_byte_identical(project, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build_paper(project)
    out = project.build_dir / "paper"
    first = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert build_paper(project).stats.rendered == 0
    shutil.rmtree(out)
    build_paper(project)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first


def test_site_links_the_built_paper(project):
    build_paper(project)
    build_site(project)
    page = (project.build_dir / "site" / "paper.html").read_text()
    assert '<a href="paper/paper.html">HTML</a>' in page and '<a href="paper/paper.md">MD</a>' in page
    assert (project.build_dir / "site" / "paper" / "figures" / "probe-accuracy.svg").is_file()
