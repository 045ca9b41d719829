"""A Ray session for one command.

With an address (`--ray-address`, else `$RAY_ADDRESS`) the command connects to a running cluster
(`ray start --head` on one machine); without one it starts a local Ray whose temp dir lives in the
project's cache (or, when that path is too long for Ray's unix sockets, in a short folder named
after it in the system's temp dir), and stops it afterwards. Every mistake is one line
(ExecutorError, exit 2): ray not installed, an address nobody answers at (probed first: `ray.init`
would retry for minutes), a cluster that refuses this client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from claims.errors import ExecutorError
from claims.progress import log
from claims.project import Project
from claims.provenance import looks_secret, sha256_text
from claims.resources import Resources

#: Environment a worker gets from the driver: what changes results or where things are. Secrets
#: stay out (they would sit in the cluster's job records): set them on the cluster's machines.
FORWARDED = re.compile(r"^(CLAIMS_|HF_|TRANSFORMERS_|TOKENIZERS_|OMP_|MKL_|TORCH_|OPENAI_|PYTHONHASHSEED$|"
                       r"PYTHONDONTWRITEBYTECODE$|CI$|TQDM_DISABLE$)")
#: Room for the temp dir in a unix socket path (107 bytes) after Ray's session/sockets/plasma_store.
SOCKET_ROOM = 107 - len("/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")
OBJECT_STORE_BYTES = 256 * 2**20  # results travel through the artifact store, not Ray's
PROBE_SECONDS = 5.0
INSTALL_HINT = "pip install -c constraints.txt -e '.[ray]'"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ExecutorError(f"--executor ray needs the ray package, which is not installed: {INSTALL_HINT}") from None
    return ray


def worker_environment() -> dict[str, str]:
    """The driver's settings that workers need (a task sets CLAIMS_CACHE from the project it is given,
    so that one Ray session serves projects with other caches without starting other workers)."""
    return {k: v for k, v in sorted(os.environ.items())
            if FORWARDED.match(k) and k != "CLAIMS_CACHE" and not looks_secret(k, v)}


def probe(address: str) -> None:
    """Fail fast, in one line, when nothing listens at a cluster address (host:port or ray://host:port)."""
    if address in ("auto", "local"):
        return
    match = re.match(r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/?$", address)
    if not match:
        raise ExecutorError(f"--ray-address {address!r} is not host:port or ray://host:port")
    port = int(match["port"] or (10001 if match["scheme"] == "ray" else 6379))
    try:
        conn = socket.create_connection((match["host"].strip("[]"), port), timeout=PROBE_SECONDS)
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start one with "
                            "`ray start --head`, or fix --ray-address / RAY_ADDRESS") from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
            return  # a TLS cluster answers only after a TLS handshake: ray.init makes it
        problem = _grpc_handshake(conn)
    if problem:
        raise ExecutorError(f"{address} answers, but not as a Ray cluster ({problem}): point --ray-address / "
                            "RAY_ADDRESS at the head's GCS port (`ray start --head --port 6379`)")


#: What an HTTP/2 client sends first (RFC 9113, 3.4), then an empty SETTINGS frame.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _grpc_handshake(conn: socket.socket) -> str:
    """Ray's GCS and client server speak gRPC, so HTTP/2: one that answers the client preface with a
    SETTINGS frame within PROBE_SECONDS passes. Empty when it does, else what went wrong: a port
    that accepts and then says nothing would make `ray.init` wait for minutes."""
    try:
        conn.settimeout(PROBE_SECONDS)
        conn.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return "it closed the connection at the HTTP/2 handshake"
            head += chunk
    except TimeoutError:
        return f"no HTTP/2 handshake within {PROBE_SECONDS:g} s"
    except (ConnectionResetError, BrokenPipeError):
        return "it closed the connection at the HTTP/2 handshake"
    except OSError as exc:
        return f"the HTTP/2 handshake failed: {exc.strerror or exc}"
    if head[3] != 0x04:  # a frame's type byte; a server's first frame is SETTINGS
        return f"it replied {head[:9]!r}, not an HTTP/2 SETTINGS frame"
    return ""


def local_config() -> dict[str, Any]:
    """A local Ray's settings. Ray runs workers at nice 15 to keep its own daemons responsive; here the
    workers do the command's work, as the local executor does at normal priority, and at nice 15 any
    other job on the machine would starve them (RAY_worker_niceness still decides, when set)."""
    return {} if "RAY_worker_niceness" in os.environ else {"worker_niceness": 0}


def temp_dir(project: Project) -> Path:
    """Ray's temp dir for a local Ray: in the cache, unless its sockets' paths would be too long."""
    temp = project.cache_dir / "ray"
    if len(str(temp)) <= SOCKET_ROOM:
        return temp
    short = Path(tempfile.gettempdir()) / f"claims-ray-{sha256_text(str(project.cache_dir))[:8]}"
    log(f"Ray's temp dir is {short}: {temp} is too long for its unix sockets")
    return short


@dataclass
class Session:
    """A connected Ray: where it is, and what its machines offer (for refusing impossible tasks)."""

    ray: ModuleType
    address: str
    _machines: list[dict[str, float]] | None = field(default=None, repr=False)

    def machines(self) -> list[dict[str, float]]:
        if self._machines is None:
            self._machines = [dict(n.get("Resources", {})) for n in self.ray.nodes() if n.get("Alive")]
        return self._machines

    def infeasible(self, needs: Resources) -> str:
        """Why no machine of the cluster can ever run a task with these needs ('' when one can)."""
        want = {"CPU": needs.num_cpus, "GPU": needs.num_gpus, "memory": needs.memory or 0}
        machines = self.machines()
        if any(all(m.get(k, 0) >= v for k, v in want.items() if v) for m in machines):
            return ""
        offers = "; ".join(f"{m.get('CPU', 0):g} CPU, {m.get('GPU', 0):g} GPU, {m.get('memory', 0) / 1e9:.3g} GB"
                           for m in machines) or "no machine"
        return f"it needs {needs.describe()} per task, and no machine of the Ray cluster has that (they offer: {offers})"


@contextlib.contextmanager
def connect(project: Project, address: str | None = None, num_cpus: int | None = None) -> Iterator[Session]:
    """Connect to (or start) Ray for the command; disconnect (or stop it) afterwards. A Ray this
    process had already initialised (a notebook, a test) is used as it is and left running."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from an offline machine
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        yield Session(ray, "this process's Ray")
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            probe(address)
            ray.init(address=address, **quiet)
        else:
            temp = temp_dir(project)
            # Ray's default for a local Ray (token auth) stays; only its notice about it is silenced
            auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level, auth.level = auth.level, logging.ERROR
            try:
                ray.init(address="local", num_cpus=num_cpus, _temp_dir=str(temp), include_dashboard=False,
                         object_store_memory=OBJECT_STORE_BYTES, _system_config=local_config(), **quiet)
            finally:
                auth.setLevel(level)
    except ExecutorError:
        raise
    except Exception as exc:  # ConnectionError, an auth token mismatch, a version mismatch...
        with contextlib.suppress(Exception):
            ray.shutdown()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        chain, cause = [], exc
        while cause is not None and len(chain) < 8:  # Ray wraps the token error in a ConnectionError
            chain.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
        if any("Authentication" in text or "InvalidAuthToken" in text for text in chain):
            first = ("the cluster refused this client's token: give it the cluster's token (RAY_AUTH_TOKEN, or "
                     "the file ~/.ray/auth_token) with RAY_AUTH_MODE=token")
        where = f"connect to the Ray cluster at {address}" if address else "start a local Ray"
        raise ExecutorError(f"cannot {where}: {first}") from None
    try:
        yield Session(ray, address or "local")
    finally:
        ray.shutdown()
