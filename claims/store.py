"""The artifact store: committed results with sidecars, the blob cache, run records, locks.

Layout
  artifacts/<experiment>/<config-hash>.json                 the result (small, committed)
  artifacts/<experiment>/<config-hash>.provenance.json      its sidecar (key, hashes, lifecycle)
  $CLAIMS_CACHE/blobs/<sha[:2]>/<sha><suffix>                large outputs, content-addressed
  $CLAIMS_CACHE/runs/<experiment>/<config-hash>.json         the last run's lifecycle record
  $CLAIMS_CACHE/checkpoints/<key>/                           partial work of an interrupted run
  $CLAIMS_CACHE/locks/<experiment>.<config-hash>.lock        one runner per node at a time

A result is written before its sidecar, each atomically (temp file + os.replace); the sidecar
holds the sha256 of the result bytes, so a torn pair, a truncated file or a hand edit is caught,
and an `integrity` hash over its own fields, so that an edited config, seed or commit is caught
too. Temp files are named `.<name>.<pid>-<host>.<random>.tmp` (host: a hash of the hostname):
one whose process on this host is gone is debris from an interrupted write, and `clean_debris`
removes it. Debris of another host is left alone, since a pid means nothing across machines that
share the store (Ray workers on a shared filesystem): that host's next run removes it.

Several processes and machines may share one store (a shared filesystem path): the per-node lock
is an flock(2) on a file under locks/, which NFSv4 and CephFS honour across machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from claims.errors import CacheError
from claims.node import Node
from claims.project import Project
from claims.provenance import canonical_json, sha256_bytes, sha256_file
from claims.result import Result

_DEBRIS = re.compile(r"^\..+\.(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{8}))?\.[^.]+\.tmp$")
#: This machine in temp file names: a hash, so that names never carry a hostname.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Mode of files written atomically: what open() would give (0644 under the usual umask), not
#: mkstemp's 0600, so that a published site is readable by the web server.
FILE_MODE = 0o666 & ~_umask()


def temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A temp file beside its destination, named so that debris can be traced to its process."""
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=folder, prefix=f".{name}.{os.getpid()}-{HOST_TAG}.", suffix=".tmp")


def _staged(path: Path, data: bytes) -> str:
    """`data` written and synced to a temp file beside `path` (removed again if that fails)."""
    fd, tmp = temp_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_many({path: data})


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files so that either all are replaced or none is: each is staged (written and
    synced to a temp file) first, and only then are they renamed into place. A failure while
    staging (a full disk) leaves the files as they were and no temp file behind."""
    staged: dict[Path, str] = {}
    try:
        for path, data in files.items():
            staged[path] = _staged(path, data)
        for path, tmp in staged.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_debris(*folders: Path, recursive: bool = True) -> list[Path]:
    """Remove temp files left by writes whose process (on this host) is gone (a SIGKILL mid-write);
    returns them."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob("*.tmp") if recursive else folder.glob("*.tmp"):
            match = _DEBRIS.match(path.name)
            if not match or match["host"] not in (None, HOST_TAG):
                continue
            if int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def sidecar_integrity(sidecar: dict[str, Any]) -> str:
    """The hash of a sidecar's own fields (all but `integrity`)."""
    from claims.provenance import sha256_text

    return sha256_text(canonical_json({k: v for k, v in sidecar.items() if k != "integrity"}))


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json_bytes(data))


def result_bytes(result: Result) -> bytes:
    return (json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


@dataclass
class Stored:
    """A result read back from the store, or why it could not be used."""

    result: Result | None
    sidecar: dict[str, Any] | None
    problem: str = ""  # empty when result and sidecar are intact


class Store:
    def __init__(self, project: Project):
        self.project = project
        self.cache = project.cache_dir

    # ---- committed results -------------------------------------------------------------
    def result_path(self, node: Node) -> Path:
        return self.project.artifacts_dir / node.experiment / f"{node.config_hash}.json"

    def sidecar_path(self, node: Node) -> Path:
        return self.result_path(node).with_suffix(".provenance.json")

    def read(self, node: Node) -> Stored | None:
        """The stored result of a node; None when absent; `problem` set when it cannot be trusted."""
        rpath, spath = self.result_path(node), self.sidecar_path(node)
        rel_r, rel_s = self.project.rel(rpath), self.project.rel(spath)
        if not rpath.exists() and not spath.exists():
            return None
        if not spath.exists():
            return Stored(None, None, f"{rel_r} has no provenance sidecar")
        try:
            sidecar = json.loads(spath.read_bytes().decode("utf-8"))
        except IsADirectoryError:
            return Stored(None, None, f"{rel_s} is a folder, not a sidecar")
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
            return Stored(None, None, f"{rel_s} is unreadable ({type(exc).__name__}: {str(exc)[:80]})")
        if not isinstance(sidecar, dict):
            return Stored(None, None, f"{rel_s} is not a sidecar (a JSON object), it is {type(sidecar).__name__}")
        output = sidecar.get("output")
        if not isinstance(output, dict) or not isinstance(output.get("sha256"), str):
            return Stored(None, None, f"{rel_s} has no output hash")
        if sidecar.get("integrity") != sidecar_integrity(sidecar):
            why = "has no integrity hash (written before sidecars carried one)" if "integrity" not in sidecar \
                else "was edited: its fields no longer match its integrity hash"
            return Stored(None, None, f"{rel_s} {why}")
        if not rpath.exists():
            return Stored(None, sidecar, f"{rel_r} is missing")
        try:
            data = rpath.read_bytes()
        except IsADirectoryError:
            return Stored(None, sidecar, f"{rel_r} is a folder, not a result")
        except OSError as exc:
            return Stored(None, sidecar, f"{rel_r} is unreadable ({exc.strerror})")
        if sha256_bytes(data) != output["sha256"]:
            return Stored(None, sidecar, f"{rel_r} does not match its sidecar hash (edited or truncated)")
        problem = self._items_problem(sidecar)
        if problem:
            return Stored(None, sidecar, problem)
        try:
            result = Result.model_validate_json(data)
        except ValidationError as exc:
            return Stored(None, sidecar, f"{rel_r} is not a valid result: {exc.errors()[0]['msg']}")
        return Stored(result, sidecar)

    def _items_problem(self, sidecar: dict[str, Any]) -> str:
        items = sidecar.get("items") or {}
        if not isinstance(items, dict):
            return "its sidecar's items are not a mapping"
        for name, meta in items.items():
            path = self.project.root / str((meta or {}).get("path", ""))
            rel = self.project.rel(path)
            if not isinstance(meta, dict) or not path.is_file():
                return f"per-item rows {name!r} ({rel}) are missing"
            if sha256_file(path) != meta.get("sha256"):
                return f"per-item rows {rel} do not match the sidecar's hash (a row was edited)"
        return ""

    def write(self, node: Node, result: Result, sidecar: dict[str, Any], items: dict[str, bytes] | None = None) -> None:
        """Rows first, then the result, then the sidecar that hashes both (each atomically): an
        interrupted write leaves no sidecar that vouches for what is not there."""
        from claims.items import SUFFIX, folder

        data = result_bytes(result)
        listed: dict[str, Any] = {}
        where = folder(self.result_path(node))
        for name, blob in sorted((items or {}).items()):
            path = where / f"{name}{SUFFIX}"
            atomic_write_bytes(path, blob)
            listed[name] = {"path": self.project.rel(path), "sha256": sha256_bytes(blob), "bytes": len(blob),
                            "rows": gzip.decompress(blob).count(b"\n")}
        if where.is_dir():  # rows of an earlier run under other names are not this result's
            for old in where.glob(f"*{SUFFIX}"):
                if old.name.removesuffix(SUFFIX) not in listed:
                    old.unlink(missing_ok=True)
        sidecar = {**sidecar, "output": {"path": self.project.rel(self.result_path(node)), "sha256": sha256_bytes(data)}}
        if listed:
            sidecar["items"] = listed
        sidecar["integrity"] = sidecar_integrity(sidecar)  # refuses NaN and unserialisable values too
        try:  # a result never lands without its sidecar: both are staged, then renamed
            atomic_write_many({self.result_path(node): data, self.sidecar_path(node): json_bytes(sidecar)})
        except OSError as exc:
            raise CacheError(f"{node.label}: cannot write its result to {self.project.rel(self.result_path(node))}: "
                             f"{exc.strerror or exc} (nothing was written; free space and run verify again)") from None

    def artifact_nodes(self) -> list[tuple[str, str]]:
        """(experiment, config_hash) of every stored result, for finding orphans."""
        out = []
        if self.project.artifacts_dir.is_dir():
            for path in sorted(self.project.artifacts_dir.glob("*/*.provenance.json")):
                out.append((path.parent.name, path.name.removesuffix(".provenance.json")))
        return out

    # ---- blobs ---------------------------------------------------------------------------
    def blob_path(self, sha: str, suffix: str = "") -> Path:
        return self.cache / "blobs" / sha[:2] / f"{sha}{suffix}"

    def put_blob(self, src: Path, suffix: str = "") -> str:
        """Move a finished file into the blob cache; returns its sha256. A corrupt file already at
        that address (bytes that no longer match it) is replaced, never kept."""
        sha = sha256_file(src)
        dest = self.blob_path(sha, suffix)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, FILE_MODE)
        if dest.exists() and sha256_file(dest) == sha:
            src.unlink()
        else:
            os.replace(src, dest)
        return sha

    def kept_blob(self, sha: str) -> Path | None:
        """A blob committed with the results (artifacts/blobs/<sha[:2]>/<sha><suffix>.gz, written by
        `keep_blob`), so that a fresh checkout need not rerun the experiment that made it."""
        folder = self.project.artifacts_dir / "blobs" / sha[:2]
        matches = sorted(folder.glob(f"{sha}*.gz")) if folder.is_dir() else []
        return matches[0] if matches else None

    def keep_blob(self, sha: str) -> Path | None:
        """Commit-side copy of a cached blob (gzip, fixed mtime so the bytes are reproducible)."""
        src = self.verified_blob(sha)
        if src is None:
            return None
        dest = self.project.artifacts_dir / "blobs" / sha[:2] / f"{src.name}.gz"
        dest.parent.mkdir(parents=True, exist_ok=True)  # always rewritten: a tampered copy is replaced
        tmp = dest.with_suffix(".tmp")
        with open(src, "rb") as f, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            shutil.copyfileobj(f, gz)
        os.replace(tmp, dest)
        return dest

    def find_blob(self, sha: str) -> Path | None:
        folder = self.cache / "blobs" / sha[:2]
        matches = sorted(p for p in folder.glob(f"{sha}*") if not p.name.endswith(".tmp")) if folder.is_dir() else []
        if not matches and (kept := self.kept_blob(sha)) is not None:  # restore the committed copy into the cache
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / kept.name.removesuffix(".gz")
            tmp = folder / f"{dest.name}.tmp"
            try:
                with gzip.open(kept, "rb") as gz, open(tmp, "wb") as out:
                    shutil.copyfileobj(gz, out)
            except (OSError, EOFError):
                tmp.unlink(missing_ok=True)
                return None
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, dest)
            matches = [dest]
        return matches[0] if matches else None

    def verified_blob(self, sha: str) -> Path | None:
        path = self.find_blob(sha)
        if path is None or sha256_file(path) != sha:
            return None
        return path

    def blob_problem(self, sha: str) -> str:
        """Why a blob cannot be used: 'missing' or 'corrupt' (empty when it is fine)."""
        path = self.find_blob(sha)
        if path is None:
            return "missing"
        return "" if sha256_file(path) == sha else "corrupt"

    # ---- run records, locks, checkpoints ----------------------------------------------------
    def run_record_path(self, node: Node) -> Path:
        return self.cache / "runs" / node.experiment / f"{node.config_hash}.json"

    def read_run_record(self, node: Node) -> dict[str, Any] | None:
        try:
            record = json.loads(self.run_record_path(node).read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def write_run_record(self, node: Node, record: dict[str, Any]) -> None:
        try:
            atomic_write_json(self.run_record_path(node), record)
        except OSError as exc:
            raise CacheError(f"{node.label}: cannot write its run record to {self.run_record_path(node)}: "
                             f"{exc.strerror or exc}") from None

    def lock_path(self, node: Node, part: str = "") -> Path:
        return self.cache / "locks" / f"{node.experiment}.{node.config_hash}{'.' + part if part else ''}.lock"

    @contextlib.contextmanager
    def lock(self, node: Node, part: str = "") -> Iterator[None]:
        """One holder at a time of the node (or of one `part` of it, e.g. a sweep's unit)."""
        path = self.lock_path(node, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lock_held(self, node: Node) -> bool:
        """Whether some process holds the node's lock now (a run in progress). A run killed with
        SIGKILL leaves its record saying 'running' but its lock free: it was interrupted."""
        path = self.lock_path(node)
        if not path.exists():
            return False
        try:
            with open(path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
                return False
        except OSError:
            return False

    def checkpoint_dir(self, key: str) -> Path:
        return self.cache / "checkpoints" / key

    def clear_checkpoint(self, key: str) -> None:
        shutil.rmtree(self.checkpoint_dir(key), ignore_errors=True)

    def clean_node_debris(self, node: Node, key: str | None) -> list[Path]:
        """Debris of killed writes where a run of this node writes (a retried task starts here)."""
        folders = [self.result_path(node).parent, self.run_record_path(node).parent]
        if key:
            folders.append(self.checkpoint_dir(key))
        return clean_debris(*folders) + clean_debris(self.cache, recursive=False)  # blobs are staged in the cache root
