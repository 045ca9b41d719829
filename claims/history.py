"""Criterion history: when a claim's criterion changed, read from git.

A claim's criterion is what decides whether it stands: its assert, its control's assert, its
metric, its expectation and power, its uncertainty, the configs of its experiment and control,
which experiment and control measure it, its baselines, what its control is matched on, its
range and reference, the claims it depends on, and its status and preregistration (relabelling a
failing claim `blocked`, dropping a dependency that blocks it, or dropping `preregistered: true`,
is a change of its criterion like any other).
For every claim, the history lists each change of one of those fields between consecutive
committed versions of its spec (and the work tree), with the commit, its date, and whether
results of the claim's experiment had been committed by then (`after_results`: a change made
with the numbers in hand). Git cannot see results that were only run locally, so a change
committed together with the first results counts as made after them.

A change is `documented` when the spec's `criterion_changes` names its commit (a prefix) or its
field (and old value), in a note written no earlier than the change (a note cannot excuse what
was changed after it). A note must name a commit that exists and changed the claim's criterion
(that field, when it names one). For a claim that was ever `preregistered`, an undocumented change
after the commit that declared it fails the coverage gate, even if a later commit dropped the flag.
All of this needs the full git history: `available()` says why it cannot be read.
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

TOP_FIELDS = ("assert", "metric", "expect", "uncertainty", "power", "status", "preregistered", "experiment",
              "baselines", "versus_baseline", "range", "reference", "headroom", "audit", "depends_on")
CONTROL_FIELDS = ("assert", "experiment", "matched_on", "rank", "role")
CONFIG_FIELDS = ("config",)
#: What an absent field means, so that writing a default out is no change.
DEFAULTS = {"expect": "effect", "status": "required", "preregistered": False}


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
        for name in CONTROL_FIELDS if prefix else TOP_FIELDS:
            if name in source:
                out[prefix + name] = source[name]
        for name in CONFIG_FIELDS:
            config = source.get(name)
            if isinstance(config, dict):
                for key, value in config.items():
                    out[f"{prefix}{name}.{key}"] = value

    take("", data)
    for name, default in DEFAULTS.items():  # an absent field is its default (`expect: null` reads as None)
        if name == "expect" and "expect" in data:
            out[name] = "null" if data["expect"] is None else data["expect"]
        else:
            out.setdefault(name, default)
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
    written: dict[tuple, int] = {}  # note -> position of the first commit that holds it
    for (sha, date, subject, _), text in zip(versions, texts, strict=True):
        data = _load(text)
        for note in data.get("criterion_changes") or []:
            written.setdefault(_note_key(note), order.get(sha, 0))
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
        change.documented = _reason(spec, change, order, written)
    return changes


def _diff(old: dict[str, Any], new: dict[str, Any], commit: str | None, date: str | None, subject: str,
          after: bool, preregistered: bool) -> list[Change]:
    return [Change(name, old.get(name), new.get(name), commit, date, subject, after, None, preregistered)
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _note_key(note: Any) -> tuple:
    if hasattr(note, "model_dump"):
        note = note.model_dump()
    if not isinstance(note, dict):
        return ("?",)
    return (str(note.get("commit") or ""), str(note.get("field") or ""), repr(note.get("was")))


def _reason(spec: ClaimSpec, change: Change, order: dict[str, int] | None = None,
            written: dict[tuple, int] | None = None) -> str | None:
    """The reason recorded for a change, from a note that names it and was written no earlier."""
    position = None
    if order is not None and change.commit:
        position = next((i for sha, i in order.items() if sha.startswith(change.commit)), None)
    for note in spec.criterion_changes:
        at = (written or {}).get(_note_key(note))  # None: the note is only in the work tree (written now)
        if at is not None and (change.commit is None or (position is not None and at > position)):
            continue  # the note was committed before this change was made
        if note.commit and change.commit and change.commit.startswith(note.commit[: len(change.commit)]) \
                and note.commit.startswith(change.commit[: len(note.commit)]):
            return note.why
        if note.field and note.field == change.field and (note.was is None or note.was == change.was):
            return note.why
    return None


def undocumented_after_preregistration(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.preregistered and not c.documented]


def available(root: Path) -> str | None:
    """Why the criterion history cannot be read here (None when it can): no git, not a repository,
    no commit, or a shallow clone whose older commits are missing."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.strip() != "true":
        return "not a git checkout (a tarball or a copy)"
    if _git(root, "rev-parse", "--verify", "-q", "HEAD") is None:
        return "the repository has no commit yet"
    if (_git(root, "rev-parse", "--is-shallow-repository") or "").strip() == "true":
        return "a shallow clone (run `git fetch --unshallow`)"
    return None


def note_problems(project: Project, spec: ClaimSpec, changes: list[Change]) -> list[str]:
    """Notes that name a commit that does not exist or did not change this claim's criterion (or
    the field they name), or a field that never changed."""
    problems = []
    for i, note in enumerate(spec.criterion_changes):
        where = f"criterion_changes[{i}]"
        if note.commit:
            if _git(project.root, "rev-parse", "--verify", "-q", f"{note.commit}^{{commit}}") is None:
                problems.append(f"{where}: commit {note.commit} does not exist in this repository")
                continue
            touched = [c for c in changes if c.commit and (c.commit.startswith(note.commit[: len(c.commit)])
                                                           and note.commit.startswith(c.commit[: len(note.commit)]))]
            if not touched:
                problems.append(f"{where}: commit {note.commit} did not change this claim's criterion")
            elif note.field and not any(c.field == note.field for c in touched):
                problems.append(f"{where}: commit {note.commit} did not change {note.field}")
        elif note.field:
            same = [c for c in changes if c.field == note.field]
            if not same:
                problems.append(f"{where}: {note.field} never changed in this claim's history")
            elif note.was is not None and not any(c.was == note.was for c in same):
                problems.append(f"{where}: {note.field} was never {note.was!r} before a change")
    return problems
