"""`claims serve`: the site on localhost, rebuilt on save, the page reloaded in the browser (Debian's
Chromium driven by Playwright, as in test_browser.py)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.project import Project
from site_build.serve import TAG, watched, with_reload

ENGINE_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_reload_script_is_added_to_pages_as_sent():
    assert with_reload(b"<html><body><p>x</p></body></html>") == b"<html><body><p>x</p>" + TAG + b"</body></html>"
    assert with_reload(b"<p>no body</p>") == b"<p>no body</p>" + TAG
    csp = b"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src 'none'\">"
    assert with_reload(csp + b"<body></body>") == csp.replace(b"'none'", b"'self'") + b"<body>" + TAG + b"</body>"


def test_the_watcher_ignores_builds_caches_and_hidden_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path / "p" / ".cache"))
    CliRunner().invoke(cli, ["init", str(tmp_path / "p")], catch_exceptions=False)
    project = Project.at(tmp_path / "p")
    keep = watched(project)
    root = project.root
    assert keep(None, str(root / "content" / "index.md")) and keep(None, str(root / "specs" / "coin-bias.yaml"))
    assert keep(None, str(root / "p" / "coin.py")) and keep(None, str(root / "artifacts" / "p.coin" / "x.json"))
    for ignored in ("build/site/index.html", ".git/index", ".cache/history/x.json", "content/.index.md.swp",
                    "p/__pycache__/coin.cpython-311.pyc", "content/index.md~"):
        assert not keep(None, str(root / ignored)), ignored


@pytest.fixture
def served(tmp_path):
    """A new project (`claims init`, nothing run) served by `python -m claims serve --port 0`."""
    root = tmp_path / "study"
    CliRunner().invoke(cli, ["init", str(root)], catch_exceptions=False)
    env = {**os.environ, "PYTHONPATH": str(ENGINE_ROOT), "PYTHONUNBUFFERED": "1", "CLAIMS_CACHE": str(tmp_path / "c")}
    proc = subprocess.Popen([sys.executable, "-m", "claims", "serve", "--port", "0"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    try:
        while True:
            seen.append(lines.get(timeout=120))
            if seen[-1].startswith("serving http://"):
                break
        yield root, seen[-1].split()[1], lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0, "".join(seen)


def test_serve_sends_pages_with_the_reload_script_and_leaves_the_files_alone(served):
    root, url, _ = served
    page = urllib.request.urlopen(url).read()
    assert TAG in page and b"The weighted coin favours heads" in page
    built = (root / "build" / "site" / "index.html").read_bytes()
    # the built page loads only the site's own script files (search); the reload script is
    # added in flight by the server and never written to disk
    assert TAG not in built and b"script-src 'self';" in built and b"script-src 'self';" in page
    assert b"EventSource" in urllib.request.urlopen(url + "__claims__/reload.js").read()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup_system.sh installs it)")
def test_editing_content_reloads_the_page_in_the_browser(served):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
    root, url, lines = served
    index = root / "content" / "index.md"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            left = []
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url)
                       else (left.append(r.request.url), r.abort()))
            page.goto(url)
            assert "Every number on these pages" in page.inner_text("main")
            page.wait_for_function("() => document.documentElement.dataset.claimsServe === 'listening'",
                                   timeout=30_000)
            index.write_text(index.read_text() + "\nA sentence written while the site was served.\n")
            page.wait_for_function("() => document.body.innerText.includes('written while the site was served')",
                                   timeout=60_000)
            assert not left, left
        finally:
            browser.close()
    output = []
    while not lines.empty():
        output.append(lines.get())
    assert any(line.startswith("changed: content/index.md") for line in output), output
