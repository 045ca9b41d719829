"""Criterion history: when a claim's criterion changed, read from git.

A claim's criterion is what decides whether it stands: its assert, its control's assert, its
metric, its expectation and power, its uncertainty, and the configs of its experiment and control.
For every claim, the history lists each change of one of those fields between consecutive
committed versions of its spec (and the work tree), with the commit, its date, and whether
results of the claim's experiment had been committed by then (`after_results`: a change made
with the numbers in hand). Git cannot see results that were only run locally, so a change
committed together with the first results counts as made after them.

A change is `documented` when the spec's `criterion_changes` names its commit (a prefix) or its
field (and old value). For a `preregistered` claim, an undocumented change after the commit that
declared it preregistered fails the coverage gate.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from claims.project import Project
from claims.spec import ClaimSpec

SCALAR_FIELDS = ("assert", "metric", "expect", "uncertainty", "power")
CONFIG_FIELDS = ("config",)


@dataclass
class Change:
    field: str
    was: Any
    now: Any
    commit: str | None  # None: not committed yet (the work tree)
    date: str | None
    subject: str
    after_results: bool
    documented: str | None = None  # the recorded reason, if any
    preregistered: bool = False  # made after the claim was declared preregistered

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def criterion(data: Any) -> dict[str, Any]:
    """The criterion fields of a spec's raw YAML data, flattened (config.<key>, control.assert...)."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}

    def take(prefix: str, source: dict[str, Any]) -> None:
        for name in SCALAR_FIELDS:
            if name in source and not (prefix and name in ("metric", "expect", "uncertainty", "power")):
                out[prefix + name] = source[name]
        for name in CONFIG_FIELDS:
            config = source.get(name)
            if isinstance(config, dict):
                for key, value in config.items():
                    out[f"{prefix}{name}.{key}"] = value

    take("", data)
    control = data.get("control")
    if isinstance(control, dict):
        take("control.", control)
    elif control is not None:
        out["control"] = control
    return out


def _git(root: Path, *args: str, data: bytes | None = None) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None


@functools.lru_cache(maxsize=4)
def _order(root: Path, head: str) -> dict[str, int]:
    """Commit -> position in topological order (0 = HEAD): a larger number is earlier."""
    out = _git(root, "rev-list", "--topo-order", "HEAD") or ""
    return {sha: i for i, sha in enumerate(out.split())}


def _versions(root: Path, relpath: str) -> list[tuple[str, str, str, str]]:
    """(commit, date, subject, path at that commit) of every commit that touched the spec, oldest first."""
    out = _git(root, "log", "--follow", "--format=%x1e%H%x1f%cI%x1f%s", "--name-only", "--", relpath) or ""
    rows = []
    for block in out.split("\x1e")[1:]:
        head, _, names = block.partition("\n")
        sha, date, subject = (head.split("\x1f") + ["", ""])[:3]
        paths = [n for n in names.splitlines() if n.strip()]
        rows.append((sha, date, subject, paths[0] if paths else relpath))
    return rows[::-1]


def _contents(root: Path, refs: list[str]) -> list[str | None]:
    """The text of each `commit:path` (None when absent), in one `git cat-file --batch`."""
    if not refs:
        return []
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input="".join(r + "\n" for r in refs).encode(),
                         capture_output=True, timeout=60).stdout
    texts: list[str | None] = []
    pos = 0
    for _ in refs:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode()
        pos = end + 1
        if header.endswith("missing"):
            texts.append(None)
            continue
        size = int(header.split()[2])
        texts.append(out[pos:pos + size].decode("utf-8", "replace"))
        pos += size + 1
    return texts


def _load(text: str | None) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


@functools.lru_cache(maxsize=64)
def _first_results(root: Path, head: str, experiment: str) -> str | None:
    out = _git(root, "log", "--reverse", "--format=%H", "--diff-filter=A", "--", f"artifacts/{experiment}/")
    return out.split()[0] if out and out.split() else None


def history(project: Project, spec: ClaimSpec) -> list[Change]:
    """Every change of the claim's criterion in git (oldest first), then any uncommitted one."""
    root = project.root
    head = (_git(root, "rev-parse", "HEAD") or "").strip()
    if not head:
        return []
    relpath = project.rel(project.specs_dir / Path(spec.where).name)
    versions = _versions(root, relpath)
    texts = _contents(root, [f"{sha}:{path}" for sha, _, _, path in versions])
    order = _order(root, head)
    first = _first_results(root, head, spec.experiment)
    prereg_at: int | None = None
    changes: list[Change] = []
    previous: dict[str, Any] | None = None
    for (sha, date, subject, _), text in zip(versions, texts, strict=True):
        data = _load(text)
        if prereg_at is None and data.get("preregistered") is True:
            prereg_at = order.get(sha)
        now = criterion(data)
        if previous is not None and data:
            after = first is not None and order.get(first, -1) >= order.get(sha, 0)
            changes += _diff(previous, now, sha[:12], date, subject, after,
                             prereg_at is not None and order.get(sha, 0) < prereg_at)
        if data:
            previous = now
    working = project.specs_dir / Path(spec.where).name
    if previous is not None and working.is_file():
        now = criterion(_load(working.read_text(encoding="utf-8", errors="replace")))
        changes += _diff(previous, now, None, None, "uncommitted change in the work tree", first is not None,
                         prereg_at is not None)
    for change in changes:
        change.documented = _reason(spec, change)
    return changes


def _diff(old: dict[str, Any], new: dict[str, Any], commit: str | None, date: str | None, subject: str,
          after: bool, preregistered: bool) -> list[Change]:
    return [Change(name, old.get(name), new.get(name), commit, date, subject, after, None, preregistered)
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _reason(spec: ClaimSpec, change: Change) -> str | None:
    for note in spec.criterion_changes:
        if note.commit and change.commit and change.commit.startswith(note.commit[: len(change.commit)]) \
                and note.commit.startswith(change.commit[: len(note.commit)]):
            return note.why
        if note.field and note.field == change.field and (note.was is None or note.was == change.was):
            return note.why
    return None


def undocumented_after_preregistration(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.preregistered and not c.documented]
