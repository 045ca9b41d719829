"""`python -m claims serve`: build the site, serve it on this machine, rebuild on save, reload the page.

1 build     `build-site` once (a failing build is reported and the last good files are served)
2 serve     build/site/ over HTTP on 127.0.0.1 (ThreadingHTTPServer); nothing leaves the machine
3 watch     the project's files (watchfiles): content, specs, templates, artifacts, code; build/,
            caches, hidden folders and editor temp files are ignored
4 rebuild   after a change settles, `build-site` again: incremental, so only what changed renders
5 reload    every HTML page is sent with one added line, <script src="/__claims__/reload.js">, which
            listens to /__claims__/events (server-sent events, no CDN) and reloads the page when a
            rebuild finishes; its Content-Security-Policy is sent with script-src 'self' instead of
            'none' so that this one script may run. The files in build/site/ stay as `build-site`
            wrote them (no script, scripts refused).

Results are read, never made: a claim whose result is stale shows as stale until `python -m claims
verify` (in another terminal) writes it; the new artifact is a change like any other.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from claims.errors import ClaimsError
from claims.progress import log
from claims.project import Project

RELOAD_PATH = "/__claims__/reload.js"
EVENTS_PATH = "/__claims__/events"
RELOAD_JS = b"""// claims serve: reload this page when the site has been rebuilt
var events = new EventSource("/__claims__/events");
events.addEventListener("open", function () { document.documentElement.dataset.claimsServe = "listening"; });
events.addEventListener("build", function () { location.reload(); });
"""
TAG = f'<script src="{RELOAD_PATH}"></script>'.encode()
IGNORED_PARTS = {"__pycache__", "node_modules"}
IGNORED_SUFFIXES = (".tmp", ".swp", ".swx", "~", ".pyc")


class Builds:
    """How many builds have finished (and the last one's error): what the event stream waits on."""

    def __init__(self) -> None:
        self.count = 0
        self.error: str | None = None
        self.closed = False
        self._cond = threading.Condition()

    def finished(self, error: str | None = None) -> None:
        with self._cond:
            self.count += 1
            self.error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a build after `seen` finished (or `timeout` s, or closing); the count now."""
        with self._cond:
            self._cond.wait_for(lambda: self.count != seen or self.closed, timeout)
            return self.count


def handler(site: Path, builds: Builds) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:  # the terminal shows builds, not requests
            pass

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")  # a reload shows the rebuilt file
            super().end_headers()

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path == RELOAD_PATH:
                return self._send(RELOAD_JS, "text/javascript; charset=utf-8")
            if path == EVENTS_PATH:
                return self._events()
            page = self._page(path)
            if page is None:
                return super().do_GET()
            return self._send(with_reload(page.read_bytes()), "text/html; charset=utf-8")

        def _page(self, path: str) -> Path | None:
            """The HTML file a request resolves to (index.html of a folder), else None."""
            file = Path(self.translate_path(path))
            if file.is_dir():
                if not path.endswith("/"):
                    return None  # the base class redirects to the folder's URL with a slash
                file = file / "index.html"
            return file if file.suffix == ".html" and file.is_file() else None

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            seen = builds.count
            try:
                self.wfile.write(b": connected\n\n")
                self.wfile.flush()
                while not builds.closed:
                    now = builds.wait(seen, timeout=15)
                    if now != seen:
                        seen = now
                        self.wfile.write(f"event: build\ndata: {now}\n\n".encode())
                    else:
                        self.wfile.write(b": idle\n\n")  # notices a closed tab
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def with_reload(html: bytes) -> bytes:
    """The page with the reload script added before </body> (at the end when there is none), and
    its Content-Security-Policy letting that one same-origin script run (`script-src 'none'` ->
    `'self'`): only as served here; the built files keep their policy."""
    html = html.replace(b"script-src 'none'", b"script-src 'self'", 1)
    at = html.rfind(b"</body>")
    return html + TAG if at < 0 else html[:at] + TAG + html[at:]


def watched(project: Project) -> Callable[[Any, str], bool]:
    """watchfiles filter: project files that can change the site (not build outputs or caches)."""
    skip = [p.resolve() for p in (project.build_dir, project.cache_dir)]

    def keep(change: Any, path: str) -> bool:
        p = Path(path)
        if p.name.endswith(IGNORED_SUFFIXES) or any(part in IGNORED_PARTS for part in p.parts):
            return False
        try:
            rel = p.resolve().relative_to(project.root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in rel.parts):
            return False  # .git, .venv, .cache, editor folders
        return not any(p.resolve().is_relative_to(s) for s in skip)

    return keep


def rebuild(project: Project, builds: Builds) -> None:
    """One build-site; its failure is a line on the terminal, and the last good files stay served."""
    from claims import history_cache, provenance
    from site_build import plan_cache
    from site_build.build import build

    history_cache._head.cache_clear()  # a commit made while serving changes the criterion history
    provenance.git_state.cache_clear()
    plan_cache.code_digest.cache_clear()
    try:
        build(project)
    except ClaimsError as exc:
        log(f"build failed: {exc.message} (serving the last good build)")
        builds.finished(exc.message)
        return
    builds.finished()


def changes(project: Project, stop: threading.Event) -> Iterator[set[Any]]:
    from watchfiles import watch

    yield from watch(project.root, watch_filter=watched(project), stop_event=stop, raise_interrupt=False)


def serve(project: Project, host: str = "127.0.0.1", port: int = 8000, watch: bool = True,
          announce: Callable[[str], None] = print) -> None:
    """Build, serve and (with `watch`) rebuild on every change until Ctrl-C."""
    builds = Builds()
    rebuild(project, builds)
    site = project.build_dir / "site"
    site.mkdir(parents=True, exist_ok=True)
    try:
        httpd = http.server.ThreadingHTTPServer((host, port), handler(site, builds))
    except OSError as exc:
        raise ClaimsError(f"cannot serve on {host}:{port}: {exc.strerror} (pass --port N, or 0 for any free port)"
                          ) from None
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="claims-serve", daemon=True).start()
    announce(f"serving http://{httpd.server_address[0]}:{httpd.server_address[1]}/ "
             f"({'rebuilding on save' if watch else 'not watching'}; Ctrl-C stops)")
    stop = threading.Event()
    try:
        if watch:
            for batch in changes(project, stop):
                names = sorted({project.rel(Path(path)) for _, path in batch})
                log(f"changed: {', '.join(names[:5])}" + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""))
                rebuild(project, builds)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        builds.close()
        httpd.shutdown()
        httpd.server_close()
