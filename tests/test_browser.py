"""The site as a reader gets it: served on localhost, opened in headless Chromium (Debian's), every
page loads without a console error, every internal link and image resolves, no request leaves
127.0.0.1, and screenshots of the index and a claim page are saved to build/screenshots/."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag

import pytest

from paper_build.build import build_paper
from site_build.build import build_site
from tests.test_site import FAILING, XSS, make

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(os.environ.get("CLAIMS_SCREENSHOTS", Path(__file__).resolve().parents[1] / "build" / "screenshots"))
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup_system.sh installs it)")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """build/site of a sample project (with a failed claim and a hostile statement), on 127.0.0.1."""
    project = make(tmp_path, {"probe-near-perfect": FAILING, "xss": XSS},
                   {"content/methods.md": "# Methods\n\n{{ claim('xss') }} and {{ claim('probe-near-perfect') }}\n"})
    build_paper(project)
    build_site(project)
    handler = functools.partial(Quiet, directory=str(project.build_dir / "site"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page target)."""

    def __init__(self, profile: Path):
        import websocket

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", f"--disk-cache-dir={profile / 'cache'}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "XDG_CACHE_HOME": str(profile / "xdg-cache"), "XDG_CONFIG_HOME": str(profile / "xdg")})
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=20, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Network.setCacheDisabled", cacheDisabled=True)  # every page fetches all it uses

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))

    def open(self, url: str) -> dict:
        """Load a page and return what it holds: links, images (loaded or not), element ids."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        script = """JSON.stringify({
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            styled: document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 20,
            scripts: document.scripts.length,
        })"""
        return json.loads(self.call("Runtime.evaluate", expression=script, returnByValue=True)["result"]["value"])

    def screenshot(self, path: Path, width: int = 1200) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        height = int(self.call("Page.getLayoutMetrics")["cssContentSize"]["height"])
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=min(max(height, 600), 6000),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def problems_in(events: list[dict], base: str) -> list[str]:
    """Requests that left localhost, failed loads, non-200 responses, console errors, dialogs."""
    found = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not (url.startswith(base) or url.startswith("data:")):
                found.append(f"request left localhost: {url}")
        elif method == "Network.responseReceived" and p["response"]["url"].startswith(base):
            if p["response"]["status"] != 200:
                found.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {p.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
            found.append(f"console error: {p.get('args')}")
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            found.append(f"log error: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif method == "Page.javascriptDialogOpening":
            found.append(f"a script opened a dialog: {p.get('message')}")
    return found


def test_site_in_headless_chromium(server, tmp_path):
    browser = Browser(tmp_path / "profile")
    try:
        queue, seen, fragments, problems, other = [server + "index.html"], set(), [], [], set()
        ids: dict[str, set[str]] = {}
        images: set[str] = set()
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            page = browser.open(url)
            problems += [f"{url}: {p}" for p in problems_in(browser.events, server)]
            assert page["styled"], f"{url}: the style sheet did not load"
            assert page["scripts"] == 0, f"{url}: a page carries a script"
            problems += [f"{url}: image did not load: {i['src']}" for i in page["images"] if not i["ok"]]
            images.update(i["src"] for i in page["images"])
            ids[url] = set(page["ids"])
            for link in page["links"]:
                target, fragment = urldefrag(link)
                if not target.startswith(server):
                    problems.append(f"{url}: link leaves the site: {link}")
                elif target.endswith(".html") or target == server:
                    queue.append(target)
                    if fragment:
                        fragments.append((url, target, fragment))
                else:
                    other.add(target)
        for url in sorted(other):  # claims.json, charts, the paper's Markdown and PDF
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200 and response.read(), url
        for source, target, fragment in fragments:
            if fragment not in ids.get(target, set()):
                problems.append(f"{source}: link to #{fragment} on {target}, which has no such id")
        assert problems == []
        pages = {u.removeprefix(server) for u in seen}
        assert {"index.html", "story.html", "methods.html", "paper.html", "claims/probe-accuracy.html",
                "claims/xss.html", "claims/probe-near-perfect.html", "source/fx_sample_probe.py.html"} <= pages
        assert {server + "claims.json", server + "paper/paper.md"} <= other
        assert {server + "figures/probe-accuracy.svg", server + "figures/steering-slope.svg"} <= images

        browser.open(server + "index.html")
        browser.screenshot(SCREENSHOTS / "index.png")
        browser.open(server + "claims/probe-accuracy.html")
        browser.screenshot(SCREENSHOTS / "claim.png")
        assert (SCREENSHOTS / "index.png").stat().st_size > 10_000
        assert (SCREENSHOTS / "claim.png").read_bytes().startswith(b"\x89PNG")
    finally:
        browser.close()
