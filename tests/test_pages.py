"""Pages that read right, in Debian's Chromium (Playwright, `executable_path`) at 1280 and 390 px:
on the index, a headline claim, a null claim judged on another field than its metric, a blocked
claim and an SAE feature page, no text box overflows its container (tests/layout.py) and no two
chart labels overlap, none is clipped or cut short with an ellipsis; the PDF is checked the same
way on its rendered pages (paper_build.pdf.layout_problems). Also: the null's card and page lead
with the quantity it is judged on, figures are numbered alike on the site and in the paper,
{ref} cross-references resolve, the search box finds a claim from the local index, and dark mode
changes the colours."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest

from paper_build.build import build_paper
from site_build.build import build_site
from tests.conftest import shared_project
from tests.layout import OVERFLOW, SVG_LABELS, label_problems
from tests.test_browser import CHROMIUM, Quiet, browser  # noqa: F401  (the module's browser fixture)
from tests.test_site import FAILING, make

playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
WIDTHS = (1280, 390)

NULL_ON_A_GAIN = """
id: probe-no-gain
title: The probe does no better than the strongest baseline on the same questions, a long title to wrap
statement: >-
  The probe reaches {accuracy:.1%} accuracy, but its paired gain over the strongest baseline is
  {control.chance_gap:+.3f} ({control.chance_gap_ci[0]:+.3f} to {control.chance_gap_ci[1]:+.3f}).
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control:
  experiment: fx_sample_probe
  config: {shift: 0.0}
  description: Trivial baselines on the same questions; the strongest by held-out accuracy.
  assert: "abs(control.chance_gap_ci[0]) <= 0.1 and abs(control.chance_gap_ci[1]) <= 0.1"
expect: null
power:
  margin: 0.1
  mde: "2.8 * (control.chance_gap_ci[1] - control.chance_gap_ci[0]) / 3.92"
  why: A tenth of accuracy is the smallest gain over a baseline a detector would be credited for.
headline: true
figure:
  kind: intervals
  rows:
    - {field: control.chance_gap, label: strongest baseline on the same questions}
    - {field: chance_gap, label: the probe's own distance from chance}
  x: {label: Paired gain of the probe in held-out accuracy, format: "+.2f"}
  reference: [{value: 0, label: no gain}]
caption: The probe's paired gain over the strongest baseline, and its distance from chance.
section: detection
"""

BLOCKED = """
id: waits-on-failure
title: A claim that waits on a claim that failed
statement: >-
  Averaged_over_every_split_and_every_seed_of_the_design the probe reaches {accuracy:.1%} accuracy
  ({level:.0%} CI {accuracy_ci[0]:.1%} to {accuracy_ci[1]:.1%}), while {control.rank_p:.3f} is the rank p of
  its random sets and {control.accuracy:.1%} their accuracy over {accuracy_n} questions in all.
experiment: fx_sample_probe
config: {shift: 0.3}
metric: accuracy
uncertainty: {method: analytic, level: 0.95}
assert: "accuracy_ci[0] > 0.5"
control: none
why_no_control: a test fixture
depends_on: [probe-near-perfect]
headline: true
"""

CONTENT = {
    "content/story.md": """
# Story

## Detection

The gain is drawn in {ref}`fig:probe-no-gain`; the slope in {ref}`fig:steering-slope`, and the
methods are in {ref}`sec:methods`.

{{ figure("probe-no-gain") }}

{{ figure("steering-slope") }}
""",
    "content/paper/02-methods.md": """
## Methods

How each number is made; the gain is discussed in {ref}`sec:the-gain-over-baselines`.
""",
    "content/paper/03-gain.md": """
## The gain over baselines

{{ figure("steering-slope") }}

{{ figure("probe-no-gain") }}

As {ref}`fig:probe-no-gain` shows, the probe gains nothing over the baseline.
""",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The sample project with a null judged on a paired gain, a blocked claim and a feature page."""
    tmp_path = tmp_path_factory.mktemp("pages")
    with shared_project(tmp_path):
        project = make(tmp_path, {"probe-near-perfect": FAILING, "probe-no-gain": NULL_ON_A_GAIN,
                                  "waits-on-failure": BLOCKED}, CONTENT)
        build_paper(project)
        build_site(project)
    out = project.build_dir / "site"
    _feature_page(tmp_path / "features", out)
    handler = functools.partial(Quiet, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", project
    httpd.shutdown()
    httpd.server_close()


def _feature_page(tmp: Path, site_dir: Path) -> None:
    """An SAE feature page rendered by site_build.features into the site (beside its style sheet)."""
    from site_build.features import add_feature_pages
    from tests.test_feature_pages import Pages, ranking

    pages = Pages(tmp, [ranking("dishonesty", "https://neuronpedia.org/gemma-3-4b-it/17-gemmascope-2-res-16k/42")])
    add_feature_pages(pages)
    pages.outputs.commit()
    shutil.copytree(tmp / "features", site_dir / "features")


PAGES = {"index": "index.html", "headline": "claims/probe-accuracy.html", "null": "claims/probe-no-gain.html",
         "blocked": "claims/waits-on-failure.html", "feature": "features/dishonesty-L7-42.html",
         "story": "story.html"}


def charts_shown(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('figure.chart img')].map(i => i.currentSrc)")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_no_text_overflows_and_no_chart_labels_overlap(site, browser, name, width):  # noqa: F811
    base, _ = site
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(base + PAGES[name], wait_until="load")
    assert page.evaluate(OVERFLOW) == [], f"{PAGES[name]} at {width}px"
    svg = browser.new_page(viewport={"width": 1400, "height": 900})
    for src in charts_shown(page):
        assert src.endswith(".narrow.svg") == (width < 640)
        svg.goto(src)
        drawn = svg.evaluate(f"() => ({SVG_LABELS})(document.querySelector('svg'))")
        assert label_problems(src, drawn) == []
        assert not [t["text"] for t in drawn["texts"] if t["text"].endswith("…")], f"{src}: a label is cut short"
    assert errors == []
    svg.close()
    page.close()


def test_a_null_leads_with_what_it_is_judged_on(site):
    _, project = site
    out = project.build_dir / "site"
    page = (out / "claims/probe-no-gain.html").read_text()
    estimate = page.split('<div class="arm arm-claim">')[1].split("</div>")[0]
    assert "Paired gain of the probe in held-out accuracy: strongest baseline on the same questions" in estimate
    assert "blue row “strongest baseline on the same questions” of Figure" in estimate
    assert "no verified value" not in page  # the control shows what its assertion reads
    index = (out / "index.html").read_text()
    card = index.split('<h3><a href="claims/probe-no-gain.html">')[1].split("</article>")[0]
    lead = card.split('<span class="value">')[1].split("</span>")[0]
    assert lead.startswith(("+", "-", "−")), lead  # the paired gain, in its own format, not the accuracy


def test_figures_are_numbered_alike_and_cross_references_resolve(site):
    _, project = site
    out = project.build_dir / "site"
    story, claim = (out / "story.html").read_text(), (out / "claims/probe-no-gain.html").read_text()
    paper = (project.build_dir / "paper" / "paper.html").read_text()
    number = re.search(r'id="figure-probe-no-gain">.*?<span class="figure-label">Figure (\d+)\.</span>', paper, re.S)[1]
    section = re.search(r'<h2 id="the-gain-over-baselines"><span class="secno">(\d+)</span>', paper)[1]
    assert f'<a class="xref" href="#figure-probe-no-gain">Figure {number}</a>' in story
    assert f'<span class="figure-label">Figure {number}.</span>' in claim
    assert f'<a class="xref" href="#figure-probe-no-gain">Figure {number}</a>' in paper
    assert '<a class="xref" href="paper.html#methods">Section 2</a>' in story
    assert f'<a class="xref" href="#the-gain-over-baselines">Section {section}</a>' in paper
    md = (project.build_dir / "paper" / "paper.md").read_text()
    assert f"## {section} The gain over baselines" in md and f"As Figure {number} shows" in md


def test_search_finds_a_claim_from_the_local_index(site, browser):  # noqa: F811
    base, _ = site
    page = browser.new_page(viewport={"width": 390, "height": 900})
    left: list[str] = []
    page.on("request", lambda r: r.url.startswith(base) or r.url.startswith("data:") or left.append(r.url))
    page.goto(base + "index.html")
    page.fill("form.search input", "strongest baseline")
    page.wait_for_selector(".search-results li a")
    hits = page.eval_on_selector_all(".search-results li a", "els => els.map(a => a.getAttribute('href'))")
    assert "claims/probe-no-gain.html" in hits
    assert page.evaluate(OVERFLOW) == []
    assert left == []
    page.close()


def test_dark_mode_follows_the_reader(site, browser):  # noqa: F811
    base, _ = site
    colours = []
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        page.goto(base + "index.html")
        colours.append(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
        page.close()
    assert colours[0] == "rgb(255, 255, 255)" and colours[1] != colours[0]


def test_the_pdf_reads_right_on_its_rendered_pages(site):
    pytest.importorskip("pypdf")
    from paper_build.pdf import layout_problems, pdf_renderer

    if pdf_renderer()[0] is None:
        pytest.skip("WeasyPrint is not available")
    from pypdf import PdfReader

    _, project = site
    paper = project.build_dir / "paper"
    pages, problems = layout_problems((paper / "paper.html").read_bytes(), paper)
    assert problems == []
    reader = PdfReader(paper / "paper.pdf")
    assert len(reader.pages) == pages
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "claim page" not in text  # no caption written for the site
    assert "The gain over baselines" in text
