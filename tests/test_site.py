"""The static site: every claim with its interval, control, chart and provenance; honest statuses;
claim references in prose; escaping; valid HTML; incremental and byte-identical rebuilds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims import figure as figure_spec
from claims.cli import cli
from claims.errors import BuildError
from claims.provenance import sha256_file
from site_build import sample
from site_build.build import build_site
from site_build.common import figures

FAILING = """
id: probe-near-perfect
title: Probe is near perfect
statement: The probe reaches {accuracy:.1%} accuracy.
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.99"
control: none
why_no_control: a test fixture
"""

XSS = """
id: xss
title: Escaping <b>bold</b>
statement: <script>alert("pwned")</script> reaches {accuracy:.1%} & more.
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control: none
why_no_control: a test fixture
"""

NEVER_RUN = (FAILING.replace("probe-near-perfect", "never-run").replace("Probe is near perfect", "Never run")
             .replace("shift: 0.3", "shift: 0.31"))


def make(tmp_path: Path, specs: dict | None = None, content: dict | None = None, probe: str = sample.PROBE):
    return sample.create(tmp_path / "proj", {**sample.SPECS, **(specs or {})}, {**sample.CONTENT, **(content or {})},
                         probe)


def site_file(project, rel: str) -> str:
    return (project.build_dir / "site" / rel).read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path):
    return make(tmp_path)


@pytest.fixture
def built(project):
    report = build_site(project)
    return project, report


def test_site_has_every_page(built):
    project, report = built
    site = project.build_dir / "site"
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    charts = [f"figures/{c}{v}.svg" for c in ("detect-vs-steer", "probe-accuracy", "probe-chance", "probe-vs-random",
                                                  "probe-vs-random-2", "steering-slope") for v in ("", ".narrow")]
    data = sorted(f"data/fx_sample_probe/{p.name}" for p in (project.root / "artifacts" / "fx_sample_probe").glob("*.json"))
    assert len(data) == 4  # two results, two sidecars, each copied once though several claims rest on them
    assert files == sorted([
        ".manifest.json", "changes.html", "claims.json", *charts, *data,
        "claims/detect-vs-steer.html", "claims/gpu-scale.html", "claims/probe-accuracy.html",
        "claims/probe-chance.html", "claims/probe-vs-random.html", "claims/steering-slope.html",
        "index.html", "methods.html", "paper.html", "source/fx_sample_probe.py.html", "static/favicon.svg",
        "static/site.css", "story.html", "search.json", "static/search.js", "static/search-index.js",
    ])
    assert report.warnings == []


def test_index_shows_every_headline_claim_with_value_ci_and_status(built):
    project, _ = built
    html = site_file(project, "index.html")
    cards = re.findall(r'<article class="card status-(\w+)">\s*<h3><a href="claims/([\w-]+)\.html">', html)
    assert cards == [("verified", "probe-accuracy"), ("verified", "steering-slope")]
    assert "75.2%" in html and "95% CI 71.0% to 79.5%" in html
    assert "Paper-scale replication" in html and "needs the paper profile" in html  # blocked, with reason


def test_claim_page_has_estimate_control_chart_and_provenance(built):
    project, _ = built
    html = site_file(project, "claims/probe-accuracy.html")
    sidecar = json.loads(next((project.root / "artifacts" / "fx_sample_probe").glob("*.provenance.json")).read_text())
    for expected in ("A sparse probe separates hallucinated from faithful answers with 75.2%",
                     "95% CI 71.0% to 79.5%", "n = 400 questions", "45.8%",  # the control, side by side
                     "The same probe on randomly chosen neurons", '<img src="../figures/probe-accuracy.svg"',
                     "Code hash", "Packages", "numpy", "Run time", "&#34;shift&#34;: 0.3"):
        assert expected in html, expected
    sources = re.findall(r'<a href="(\.\./source/[^"]+)">fx_sample_probe\.py</a> <code title="(\w+)"', html)
    assert sources, "the claim page links to the experiment source"
    href, recorded_sha = sources[0]
    source = project.build_dir / "site" / "claims" / href
    assert recorded_sha == sha256_file(project.root / "fx_sample_probe.py")
    assert recorded_sha in source.read_text() and "def run(config, ctx):" in source.read_text()
    assert sidecar["key"][:16] in html


def test_prose_references_render_from_results(built):
    project, _ = built
    story = site_file(project, "story.html")
    assert "The probe reaches 75.2% (95% CI 71.0% to 79.5%), against\n45.8% for random neurons." in story
    assert "<td>400</td>" in story  # {{ claim(...).n }} inside a Markdown table
    assert ('<figure class="chart" id="figure-steering-slope"><picture><source media="(max-width: 640px)" '
            'srcset="figures/steering-slope.narrow.svg" width="340"') in story
    assert '<img src="figures/steering-slope.svg" alt="compliance rate against alpha: this claim 0: 30%' in story
    assert re.search(r'<span class="figure-label">Figure \d+\.</span> The blue line is this claim', story)
    assert 'id="fn1"' in story  # footnotes
    index = site_file(project, "index.html")
    assert 'Steering: 3.23 (95% CI 2.64 to 3.82; n = 50 seeds).' in index
    assert '<a href="story.html">story</a>' in index  # story.md -> story.html


def test_failed_and_stale_claims_never_render_as_standing(tmp_path):
    project = make(tmp_path, {"probe-near-perfect": FAILING}, {"content/extra.md": """
        # Extra
        Failed: {{ claim("probe-near-perfect") }} value {{ claim("probe-near-perfect").value | pct }}.
        Stale: {{ claim("never-run") }} value {{ claim("never-run").value | pct }}.

        {{ figure("never-run") }}
        """})
    (project.specs_dir / "never-run.yaml").write_text(NEVER_RUN.lstrip())  # written after the run: stale
    report = build_site(project)
    extra = site_file(project, "extra.html")
    assert ('<span class="withheld status-failed">75.2% <a class="badge badge-failed" '
            'href="claims/probe-near-perfect.html">failed</a></span>') in extra
    assert '<a class="badge badge-stale" href="claims/never-run.html">stale: no verified value</a>' in extra
    assert re.search(r"claim-ref status-stale.*Never run \(no verified statement\)", extra)
    assert "chart withheld: claim stale</a>" in extra  # no extra warning: the stale claim is reported
    page = site_file(project, "claims/probe-near-perfect.html")
    assert "Why this claim does not stand" in page and "assertion is false: accuracy_ci[0] &gt; 0.99" in page
    stale = site_file(project, "claims/never-run.html")
    assert "Chart withheld" in stale and "is missing: never run" in stale
    assert [w.split(":")[0] for w in report.warnings] == ["specs/never-run.yaml", "specs/probe-near-perfect.yaml"]


def test_strict_refuses_and_writes_nothing(tmp_path):
    project = make(tmp_path, {"probe-near-perfect": FAILING})
    with pytest.raises(BuildError) as err:
        build_site(project, strict=True)
    assert "build-site --strict: 1 problem(s), nothing written" in err.value.message
    assert "specs/probe-near-perfect.yaml: claim 'probe-near-perfect' is failed" in err.value.message
    assert not (project.build_dir / "site").exists()
    result = CliRunner().invoke(cli, ["--project", str(project.root), "build-site", "--strict"])
    assert result.exit_code == 1 and "nothing written" in result.output


def test_unknown_claim_in_prose_is_visible_and_strict_error(tmp_path):
    project = make(tmp_path, content={"content/methods.md": "# Methods\n\nSee {{ claim(\"no-such\") }}.\n"})
    report = build_site(project)
    assert report.warnings == ["content/methods.md: cites unknown claim 'no-such'"]
    assert "unknown claim &#39;no-such&#39;" in site_file(project, "methods.html")
    with pytest.raises(BuildError, match="content/methods.md: cites unknown claim 'no-such'"):
        build_site(project, strict=True)  # warm build: the warning is replayed from the manifest


@pytest.mark.parametrize(("body", "message"), [
    ("# M\n\n{{ claim('probe-accuracy') \n", "content/methods.md:3: unexpected end of template"),
    ("# M\n\nA {{ 0.5 | pct }} typed number.\n", "content/methods.md:3: TypeError: format a claim field"),
    ("# M\n\n{{ claim('probe-accuracy').nope }}\n", "content/methods.md:3: UndefinedError"),
])
def test_content_errors_name_file_and_line(tmp_path, body, message):
    project = make(tmp_path, content={"content/methods.md": body})
    with pytest.raises(BuildError) as err:
        build_site(project)
    assert err.value.message.startswith(message), err.value.message


def test_statement_with_script_renders_as_text(tmp_path):
    project = make(tmp_path, {"xss": XSS}, {"content/methods.md": "# Methods\n\n{{ claim('xss') }}\n"})
    build_site(project)
    for rel in ("claims/xss.html", "index.html", "methods.html", "paper.html"):
        html = site_file(project, rel)
        scripts = re.findall(r"<script[^>]*>", html, re.I)  # the site's own search box, and nothing else
        assert len(scripts) == 1 and 'static/search.js"' in scripts[0], rel
        assert "<b>bold</b>" not in html, rel
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; reaches 75.2% &amp; more." in site_file(
        project, "claims/xss.html")
    assert "Escaping &lt;b&gt;bold&lt;/b&gt;" in site_file(project, "index.html")


def test_generated_html_is_valid(tmp_path):
    html5lib = pytest.importorskip("html5lib")
    project = make(tmp_path, {"probe-near-perfect": FAILING, "xss": XSS})
    (project.specs_dir / "never-run.yaml").write_text(NEVER_RUN.lstrip())
    build_site(project)
    pages = sorted((project.build_dir / "site").rglob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
        try:
            parser.parse(page.read_bytes())
        except html5lib.html5parser.ParseError as exc:
            pytest.fail(f"{page.name}: {exc}")
        html = page.read_text()
        assert html.count("<table") == html.count("</table>") and html.count("<p>") <= html.count("</p>")


def test_nothing_is_fetched_from_elsewhere(built):
    project, _ = built
    for page in (project.build_dir / "site").rglob("*.html"):
        html = page.read_text()
        refs = re.findall(r'(?:src|srcset)="([^"]*)"', html) + re.findall(r'<link[^>]*href="([^"]*)"', html)
        external = [r for r in refs if re.match(r"^[a-z]+:", r) and not r.startswith("data:")]
        assert external == [], page.name
        links = re.findall(r'<a[^>]*href="(https?:[^"]*)"', html)  # only the works cited link out
        assert all(link.startswith("https://arxiv.org/") for link in links), (page.name, links)
    for svg in (project.build_dir / "site" / "figures").glob("*.svg"):
        assert not re.search(r'(?:href|src)="https?:', svg.read_text())


def test_export_json(built):
    project, _ = built
    data = json.loads(site_file(project, "claims.json"))
    claims = {c["id"]: c for c in data["claims"]}
    c = claims["probe-accuracy"]
    assert c["status"] == "verified" and c["value"] == pytest.approx(0.7525) and c["n"] == 400
    assert c["ci"][0] < c["value"] < c["ci"][1] and c["level"] == 0.95
    assert c["control"]["holds"] is True and c["control"]["value"] == pytest.approx(0.4575)
    assert len(c["provenance"]["key"]) == 64 and c["page"] == "claims/probe-accuracy.html"
    assert c["figure"] == "figures/probe-accuracy.svg"
    assert claims["gpu-scale"]["status"] == "blocked" and claims["gpu-scale"]["required"] is False


def test_warm_rebuild_renders_only_what_changed(project):
    first = build_site(project)
    assert first.stats.rendered == 34 and first.stats.reused == 0
    again = build_site(project)
    assert again.stats.rendered == 0 and again.stats.reused == 34
    story = project.content_dir / "story.md"
    story.write_text(story.read_text() + "\nOne more sentence.\n")
    warm = build_site(project)
    assert sorted(warm.stats.rendered_files) == ["search.json", "static/search-index.js", "story.html"]
    assert "One more sentence." in site_file(project, "story.html")


def test_removed_content_is_cleaned_and_edited_output_repaired(project):
    build_site(project)
    (project.content_dir / "methods.md").unlink()
    (project.build_dir / "site" / "stray.txt").write_text("left over")
    index = project.build_dir / "site" / "index.html"
    index.write_text("tampered")
    report = build_site(project)
    site = project.build_dir / "site"
    assert not (site / "methods.html").exists() and not (site / "stray.txt").exists()
    assert "index.html" in report.stats.rendered_files and "Headline claims" in index.read_text()


def test_rebuild_is_byte_identical(project, monkeypatch, tmp_path):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build_site(project)
    site = project.build_dir / "site"
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert b"Built 2023-11-14." in first[Path("index.html")]
    shutil.rmtree(site)
    build_site(project)
    second = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert first == second


def test_figure_registry_refuses_duplicates_and_unknown_names_warn(tmp_path):
    with pytest.raises(ValueError, match="figure kind 'sweep' is registered twice"):
        figures.kind("sweep")(lambda claim, panel, width: None)
    assert sorted(figures.KINDS) == sorted(figure_spec.KINDS)  # every kind a spec may name is drawn
    spec = sample.SPECS["steering-slope"].replace("figure: alpha_sweep", "figure: no_such_chart")
    project = make(tmp_path, {"steering-slope": spec})
    report = build_site(project)
    assert any("unknown figure 'no_such_chart'" in w and w.startswith("specs/steering-slope.yaml") for w in report.warnings)
    with pytest.raises(BuildError, match="no_such_chart"):
        build_site(project, strict=True)


def test_figure_with_missing_data_is_a_warning(tmp_path):
    spec = sample.SPECS["probe-accuracy"].replace("headline: true", "headline: true\nfigure: detection_vs_steering")
    project = make(tmp_path, {"probe-accuracy": spec}, probe=sample.PROBE.replace('"methods": methods', '"other": 1'))
    report = build_site(project)
    assert ("specs/probe-accuracy.yaml:19: figure: claim probe-accuracy: the main result has no 'methods' "
            "(it has: accuracy, accuracy_ci,") in " ".join(report.warnings)
    assert "Chart" not in site_file(project, "claims/probe-accuracy.html").split("Provenance")[0].split("Control")[1]


def test_cli_build_site(project):
    result = CliRunner().invoke(cli, ["--project", str(project.root), "build-site"])
    assert result.exit_code == 0, result.output
    assert "site: build/site" in result.output


def test_sample_content_passes_the_coverage_gate(project, git_env):
    from tests.conftest import git

    git(project.root, "init", "-q")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "sample")
    result = CliRunner().invoke(cli, ["--project", str(project.root), "coverage"])
    assert result.exit_code == 0, result.output
    story = project.content_dir / "story.md"
    story.write_text(story.read_text() + "\nThe probe reached 76.5% on a good day.\n")
    result = CliRunner().invoke(cli, ["--project", str(project.root), "coverage"])
    lines = len(story.read_text().splitlines())
    assert result.exit_code == 1
    assert f"content/story.md:{lines}: number-without-claim: '76.5%' is typed by hand" in result.output
