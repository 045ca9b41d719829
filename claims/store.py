"""The artifact store: committed results with sidecars, the blob cache, run records, locks.

Layout
  artifacts/<experiment>/<config-hash>.json                 the result (small, committed)
  artifacts/<experiment>/<config-hash>.provenance.json      its sidecar (key, hashes, lifecycle)
  $CLAIMS_CACHE/blobs/<sha[:2]>/<sha><suffix>                large outputs, content-addressed
  $CLAIMS_CACHE/runs/<experiment>/<config-hash>.json         the last run's lifecycle record
  $CLAIMS_CACHE/checkpoints/<key>/                           partial work of an interrupted run
  $CLAIMS_CACHE/locks/<experiment>.<config-hash>.lock        one runner per node at a time

A result is written before its sidecar, each atomically (temp file + os.replace); the sidecar
holds the sha256 of the result bytes, so a torn pair, a truncated file or a hand edit is caught.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from claims.node import Node
from claims.project import Project
from claims.provenance import canonical_json, sha256_bytes, sha256_file
from claims.result import Result


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())


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
        if not rpath.exists() and not spath.exists():
            return None
        if not spath.exists():
            return Stored(None, None, f"{self.project.rel(rpath)} has no provenance sidecar")
        try:
            sidecar = json.loads(spath.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            return Stored(None, None, f"{self.project.rel(spath)} is unreadable ({exc})")
        if not rpath.exists():
            return Stored(None, sidecar, f"{self.project.rel(rpath)} is missing")
        data = rpath.read_bytes()
        if sha256_bytes(data) != sidecar.get("output", {}).get("sha256"):
            return Stored(None, sidecar, f"{self.project.rel(rpath)} does not match its sidecar hash (edited or truncated)")
        try:
            result = Result.model_validate_json(data)
        except ValidationError as exc:
            return Stored(None, sidecar, f"{self.project.rel(rpath)} is not a valid result: {exc.errors()[0]['msg']}")
        return Stored(result, sidecar)

    def write(self, node: Node, result: Result, sidecar: dict[str, Any]) -> None:
        data = result_bytes(result)
        sidecar = {**sidecar, "output": {"path": self.project.rel(self.result_path(node)), "sha256": sha256_bytes(data)}}
        canonical_json(sidecar)  # refuses NaN and unserialisable values before anything is written
        atomic_write_bytes(self.result_path(node), data)
        atomic_write_json(self.sidecar_path(node), sidecar)

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

    def put_blob(self, src: Path) -> str:
        """Move a finished file into the blob cache; returns its sha256."""
        sha = sha256_file(src)
        dest = self.blob_path(sha, "".join(src.suffixes))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            src.unlink()
        else:
            os.replace(src, dest)
        return sha

    def find_blob(self, sha: str) -> Path | None:
        folder = self.cache / "blobs" / sha[:2]
        matches = sorted(folder.glob(f"{sha}*")) if folder.is_dir() else []
        return matches[0] if matches else None

    def verified_blob(self, sha: str) -> Path | None:
        path = self.find_blob(sha)
        if path is None or sha256_file(path) != sha:
            return None
        return path

    # ---- run records, locks, checkpoints ----------------------------------------------------
    def run_record_path(self, node: Node) -> Path:
        return self.cache / "runs" / node.experiment / f"{node.config_hash}.json"

    def read_run_record(self, node: Node) -> dict[str, Any] | None:
        try:
            return json.loads(self.run_record_path(node).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def write_run_record(self, node: Node, record: dict[str, Any]) -> None:
        atomic_write_json(self.run_record_path(node), record)

    @contextlib.contextmanager
    def lock(self, node: Node) -> Iterator[None]:
        path = self.cache / "locks" / f"{node.experiment}.{node.config_hash}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def checkpoint_dir(self, key: str) -> Path:
        return self.cache / "checkpoints" / key

    def clear_checkpoint(self, key: str) -> None:
        shutil.rmtree(self.checkpoint_dir(key), ignore_errors=True)
