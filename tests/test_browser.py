"""The site as a reader gets it, in Debian's Chromium driven by Playwright (launched with
`executable_path`; nothing is downloaded): every page loads without a console error, every
internal link and image resolves, no request leaves 127.0.0.1, the only script is the site's own
search box (static/search.js); at 1280 and 390 px no element
overflows the viewport, chart text is at least 11 px as shown, the claims table keeps its status
and control visible; each chart's text is inside its drawing and no two labels overlap.
Screenshots of the index, a claim page with a chart and the paper, at both widths, go to
build/screenshots/ (CLAIMS_SCREENSHOTS overrides)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag

import pytest

from paper_build.build import build_paper
from site_build.build import build_site
from tests.conftest import shared_project
from tests.test_site import FAILING, XSS, make

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(os.environ.get("CLAIMS_SCREENSHOTS", Path(__file__).resolve().parents[1] / "build" / "screenshots"))
WIDTHS = (1280, 390)
MIN_CHART_TEXT = 11
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup_system.sh installs it)")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """build/site of a sample project (with a failed claim and a hostile statement), on 127.0.0.1."""
    tmp_path = tmp_path_factory.mktemp("browser")
    with shared_project(tmp_path):
        project = make(tmp_path, {"probe-near-perfect": FAILING, "xss": XSS},
                       {"content/methods.md": "# Methods\n\n{{ claim('xss') }} and {{ claim('probe-near-perfect') }}\n"})
        build_paper(project)
        build_site(project)
    handler = functools.partial(Quiet, directory=str(project.build_dir / "site"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


class Reader:
    """One page at one width, recording what a reader's browser would complain about."""

    def __init__(self, browser, base: str, width: int):
        self.base, self.problems = base, []
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", lambda r: r.status != 200 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        self.page.on("dialog", lambda d: self.problems.append(f"a script opened a dialog: {d.message}"))

    def _failed(self, request):
        if "ERR_ABORTED" not in (request.failure or ""):  # not a request the next navigation cancelled
            self.problems.append(f"load failed: {request.url} ({request.failure})")

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base) or url.startswith("data:"):
            route.continue_()
        else:
            self.problems.append(f"request left localhost: {url}")
            route.abort()

    def open(self, url: str) -> dict:
        self.page.goto(url, wait_until="load")
        return self.page.evaluate("""() => ({
            links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, cited: !!a.closest('.references')})),
            images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            styled: document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 20,
            scripts: [...document.scripts].map(s => s.src),
        })""")


def test_site_in_headless_chromium(server, browser):
    reader = Reader(browser, server, 1280)
    queue, seen, fragments, other = [server + "index.html"], set(), [], set()
    ids: dict[str, set[str]] = {}
    images: set[str] = set()
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        page = reader.open(url)
        assert page["styled"], f"{url}: the style sheet did not load"
        assert all(src.startswith(server) and src.endswith("static/search.js") for src in page["scripts"]), \
            f"{url}: a page carries a script other than the site's own search box: {page['scripts']}"
        reader.problems += [f"{url}: image did not load: {i['src']}" for i in page["images"] if not i["ok"]]
        images.update(i["src"] for i in page["images"])
        ids[url] = set(page["ids"])
        for link in page["links"]:
            target, fragment = urldefrag(link["href"])
            if not target.startswith(server):
                if not link["cited"]:  # a work cited may link to its publisher; nothing else leaves the site
                    reader.problems.append(f"{url}: link leaves the site: {link['href']}")
            elif target.endswith(".html") or target == server:
                queue.append(target)
                if fragment:
                    fragments.append((url, target, fragment))
            else:
                other.add(target)
    for url in sorted(other):  # claims.json, result files, charts, the paper's Markdown and PDF
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and response.read(), url
    for source, target, fragment in fragments:
        if fragment not in ids.get(target, set()):
            reader.problems.append(f"{source}: link to #{fragment} on {target}, which has no such id")
    assert reader.problems == []
    pages = {u.removeprefix(server) for u in seen}
    assert {"index.html", "story.html", "methods.html", "paper.html", "changes.html", "claims/probe-accuracy.html",
            "claims/xss.html", "claims/probe-near-perfect.html", "source/fx_sample_probe.py.html"} <= pages
    assert {server + "claims.json", server + "paper/paper.md"} <= other
    assert any(u.startswith(server + "data/fx_sample_probe/") and u.endswith(".provenance.json") for u in other)
    assert {server + "figures/probe-accuracy.svg", server + "figures/steering-slope.svg"} <= images
    reader.page.close()


LAYOUT = """(minFont) => {
  const width = window.innerWidth, out = {overflow: [], charts: [], tables: []};
  if (document.documentElement.scrollWidth > width) out.overflow.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('.table-wrap, pre, .sha')) continue;  // scroll inside their own box
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1) out.overflow.push(`${el.tagName.toLowerCase()}.${el.className}: right edge ${Math.round(r.right)} > ${width}`);
  }
  for (const img of document.querySelectorAll('figure.chart img')) {
    out.charts.push({src: img.currentSrc, shown: img.getBoundingClientRect().width});
  }
  for (const row of document.querySelectorAll('table.claims tbody tr')) {
    for (const sel of ['.status-cell', '.control-cell']) {
      const cell = row.querySelector(sel);
      if (!cell) continue;
      const r = cell.getBoundingClientRect();
      out.tables.push({cell: sel, visible: r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= width + 1});
    }
  }
  return out;
}"""

SVG_TEXT = """() => {
  const svg = document.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim() &&
      getComputedStyle(t).opacity !== '0' && t.getAttribute('opacity') !== '0');
  return {width: parseFloat(svg.getAttribute('width')), height: parseFloat(svg.getAttribute('height')),
          box: [box.left, box.top, box.right, box.bottom],
          texts: texts.map(t => { const r = t.getBoundingClientRect();
            return {text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize), box: [r.left, r.top, r.right, r.bottom]}; })};
}"""


def chart_text(page, url: str) -> dict:
    page.goto(url)
    return page.evaluate(SVG_TEXT)


@pytest.mark.parametrize("width", WIDTHS)
def test_readable_at_each_width(server, browser, width):
    """No sideways overflow, chart text >= 11 px as shown, status and control of every claim visible."""
    reader = Reader(browser, server, width)
    svg_page = browser.new_page(viewport={"width": 1400, "height": 900})
    sizes: dict[str, dict] = {}
    for rel in ("index.html", "story.html", "paper.html", "changes.html", "claims/probe-vs-random.html",
                "claims/probe-chance.html", "claims/steering-slope.html", "claims/detect-vs-steer.html"):
        reader.open(server + rel)
        layout = reader.page.evaluate(LAYOUT, MIN_CHART_TEXT)
        assert layout["overflow"] == [], f"{rel} at {width}px"
        assert all(t["visible"] for t in layout["tables"]), f"{rel} at {width}px: a status or control cell is hidden"
        for chart in layout["charts"]:
            assert chart["src"].endswith(".narrow.svg") == (width < 640), f"{rel} at {width}px shows {chart['src']}"
            if chart["src"] not in sizes:
                sizes[chart["src"]] = chart_text(svg_page, chart["src"])
            drawn = sizes[chart["src"]]
            scale = chart["shown"] / drawn["width"]
            smallest = min(t["size"] for t in drawn["texts"]) * scale
            assert smallest >= MIN_CHART_TEXT, f"{rel} at {width}px: {chart['src']} text is {smallest:.1f}px"
        if rel in ("index.html",):
            assert layout["tables"], "the index lists every claim"
    assert len(sizes) >= 6
    assert reader.problems == []
    reader.page.close()
    svg_page.close()


def test_chart_text_is_inside_and_apart(server, browser):
    """Every chart, wide and narrow: no label outside its drawing (clipped), no two labels overlapping
    (as '0.740.76' would)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    names = []
    for rel in ("probe-accuracy", "probe-chance", "probe-vs-random", "probe-vs-random-2", "steering-slope",
                "detect-vs-steer"):
        for variant in ("", ".narrow"):
            names.append(f"figures/{rel}{variant}.svg")
    for name in names:
        drawn = chart_text(page, server + name)
        left, top, right, bottom = drawn["box"]
        texts = drawn["texts"]
        assert texts, name
        for t in texts:
            x0, y0, x1, y1 = t["box"]
            assert x0 >= left - 0.5 and x1 <= right + 0.5 and y0 >= top - 0.5 and y1 <= bottom + 0.5, (name, t)
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                overlap_x = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
                overlap_y = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
                assert overlap_x <= 1 or overlap_y <= 1, (name, a["text"], b["text"])
    page.close()


def test_screenshots(server, browser):
    """What a reader sees, kept for a person to look at: index, a claim with a chart, the paper."""
    for width in WIDTHS:
        reader = Reader(browser, server, width)
        for rel, name in (("index.html", "index"), ("claims/probe-vs-random.html", "claim"), ("paper.html", "paper")):
            reader.open(server + rel)
            path = SCREENSHOTS / f"{name}-{width}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            reader.page.screenshot(path=str(path), full_page=True)
            assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000
        assert reader.problems == []
        reader.page.close()
