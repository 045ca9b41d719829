"""A claim's criterion history (claims/history.py), read from git once per commit and kept on disk.

Reading the history runs git per claim (`log --follow`, `cat-file`) and parses every committed
version of the spec: seconds for a repository of forty claims, on every `status`, `coverage` and
`build-site`. The history is a function of the commit checked out, the spec file as it is in the
work tree (its uncommitted change and its `criterion_changes`), and the code that reads it; so an
entry is keyed by the sha256 of (HEAD, the spec's bytes, the source of claims/history.py, the
claim's id and experiment) and lives in `$CLAIMS_CACHE/history/<key>.json`. A new commit, an edit
of the spec or of the reader makes a new key; an unreadable entry is read from git again.

    from claims.history_cache import history
    changes = history(project, spec)        # same answer as claims.history.history
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from claims.project import Project
from claims.provenance import canonical_json, file_digest, sha256_bytes, sha256_text
from claims.spec import ClaimSpec

READER = Path(__file__).with_name("history.py")


def history(project: Project, spec: ClaimSpec) -> list[Any]:
    """`claims.history.history(project, spec)`, from the disk cache when the key matches."""
    key = entry_key(project, spec)
    path = project.cache_dir / "history" / f"{key}.json" if key else None
    if path is not None:
        cached = _read(path)
        if cached is not None:
            return cached
    from claims.history import history as read_history

    changes = read_history(project, spec)
    if path is not None:
        _write(path, [c.to_json() for c in changes])
    return changes


def entry_key(project: Project, spec: ClaimSpec) -> str | None:
    """The key of a claim's history entry; None outside git (nothing to cache)."""
    head = _head(project.root)
    if head is None:
        return None
    working = project.specs_dir / Path(spec.where).name
    try:
        spec_bytes = sha256_bytes(working.read_bytes())
    except OSError:
        spec_bytes = None
    return sha256_text(canonical_json({
        "head": head, "spec": spec_bytes, "reader": file_digest(READER), "id": spec.id,
        "experiment": spec.experiment, "path": project.rel(working),
    }))


@functools.lru_cache(maxsize=8)
def _head(root: Path) -> str | None:
    """The commit checked out at `root` (read once per process), None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _read(path: Path) -> list[Any] | None:
    from claims.history import Change

    try:
        rows = json.loads(path.read_text())
        return [Change(**row) for row in rows]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):  # damaged, or written by another reader: read git again
        from claims.progress import log

        log(f"history cache entry {path.name[:12]} is unreadable: reading the criterion history from git again")
        return None


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    from claims.store import atomic_write_json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, rows)
    except OSError:  # a read-only cache only costs the next reader the git calls
        pass
