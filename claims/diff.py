"""`claims diff`: what changed in the claims between two states of a project.

A state is what `verify --no-run` says of every claim at one git revision (or in the work tree):
status, verdict words, value, interval, n, the rendered statement, and the claim's criterion (its
assertions, metric, expectation, power, uncertainty and configs, as claims.history reads them).
Both states are judged by the engine that runs `diff`, so that a difference comes from the specs,
results and experiment code of the two revisions, not from a change of the engine's own rules.

A revision's state is computed in a copy of its tree (`git archive`, into a temporary folder;
members that are links leading out of the tree are skipped, with a warning), then cached in
build/diff/ under the commit, the engine's hash and the mode: a commit's state does not change.
By default nothing of the revision is imported: its state is what its specs say of its committed
results (claims.revision), so that reviewing a branch never runs its code. `--trust-revision`
instead runs `verify --no-run` on the copy in a subprocess, which executes the revision's
experiment modules (imports them to check that its results are fresh), and says so.

What a claim's entry flags (in this order):
  added / removed   the claim exists in one state only
  status            its status changed (verified, failed, stale, error, blocked, not applicable)
  moved             its new value lies outside its old interval
  value, interval   its value or interval changed (within the old interval: informational)
  verdict           its verdict words changed (claims.verdict)
  statement         the rendered sentence changed (its numbers, or its text)
  criterion         a criterion field changed (the fields are listed)
`diff` exits 1 when a headline claim (in either state) changed status, was added or was removed.

The default old state is the last publish (`publish.sh` records it as the git ref
refs/claims/published), else HEAD~1; the default new state is the work tree.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import yaml

from claims.errors import ClaimsError
from claims.numbers import fmt_value, metric_format
from claims.project import Project

PUBLISHED_REF = "refs/claims/published"
FLAGS = ("added", "removed", "status", "moved", "value", "interval", "verdict", "statement", "criterion")


@dataclass
class ClaimState:
    id: str
    title: str
    headline: bool
    status: str
    verdict: str
    statement: str
    value: float | None
    ci: list[float] | None
    level: float | None
    n: int | None
    unit: str
    expect: str
    fmt: str
    criterion: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, outcome: dict[str, Any], raw_spec: dict[str, Any]) -> ClaimState:
        from claims.history import criterion

        spec = SimpleNamespace(statement=str(raw_spec.get("statement", "")), metric=str(raw_spec.get("metric", "")),
                               kind=str(raw_spec.get("kind", "estimate")))
        return cls(outcome["id"], outcome.get("title", outcome["id"]), bool(outcome.get("headline")),
                   outcome.get("status", "?"), outcome.get("verdict", ""), outcome.get("statement", ""),
                   outcome.get("value"), outcome.get("ci"), outcome.get("level"), outcome.get("n"),
                   outcome.get("unit", ""), outcome.get("expect", "effect"), metric_format(spec),
                   json.loads(json.dumps(criterion(raw_spec), default=str)))

    def shown(self, value: float | None) -> str:
        return "–" if value is None else fmt_value(value, self.fmt)

    def interval(self) -> str:
        return f"{self.shown(self.ci[0])} to {self.shown(self.ci[1])}" if self.ci else "–"


@dataclass
class State:
    label: str  # what a reader is told: "work tree", "HEAD~1 (3f2a1b9c0d1e)", "last publish (...)"
    commit: str | None
    claims: dict[str, ClaimState]


@dataclass
class ClaimDiff:
    id: str
    title: str
    headline: bool
    old: ClaimState | None
    new: ClaimState | None
    flags: list[str]
    criterion_fields: list[str] = field(default_factory=list)

    @property
    def status_changed(self) -> bool:
        return bool({"status", "added", "removed"} & set(self.flags))

    def cell(self, name: str) -> str:
        """old -> new for a column of the table, or the one value when it did not change."""
        def show(state: ClaimState | None) -> str:
            if state is None:
                return "(none)"
            return {"status": state.status.replace("_", " "), "value": state.shown(state.value),
                    "interval": state.interval(), "verdict": state.verdict or "–"}[name]

        if self.old is None or self.new is None:  # added or removed: the one side there is
            return show(self.old or self.new)
        old, new = show(self.old), show(self.new)
        return new if old == new else f"{old} → {new}"


@dataclass
class Diff:
    old: State
    new: State
    claims: list[ClaimDiff]

    @property
    def changed(self) -> list[ClaimDiff]:
        return [c for c in self.claims if c.flags]

    @property
    def headline_status_changes(self) -> list[ClaimDiff]:
        return [c for c in self.claims if c.headline and c.status_changed]

    def data(self) -> dict[str, Any]:
        return asdict(self)


# ---- comparing two states --------------------------------------------------------------------
def compare(old: State, new: State) -> Diff:
    ids = list(new.claims) + [i for i in old.claims if i not in new.claims]
    out = []
    for claim_id in ids:
        a, b = old.claims.get(claim_id), new.claims.get(claim_id)
        either = b or a
        flags, fields = _flags(a, b)
        out.append(ClaimDiff(claim_id, either.title, bool((a and a.headline) or (b and b.headline)), a, b, flags, fields))
    return Diff(old, new, out)


def _flags(a: ClaimState | None, b: ClaimState | None) -> tuple[list[str], list[str]]:
    if a is None or b is None:
        return ["added" if a is None else "removed"], []
    found = set()
    if a.status != b.status:
        found.add("status")
    if a.value is not None and b.value is not None and a.ci and not (a.ci[0] <= b.value <= a.ci[1]):
        found.add("moved")
    elif not _same(a.value, b.value) or a.n != b.n:
        found.add("value")
    if not (_same_list(a.ci, b.ci)):
        found.add("interval")
    if a.verdict != b.verdict:
        found.add("verdict")
    if a.statement != b.statement:
        found.add("statement")
    fields = sorted(k for k in set(a.criterion) | set(b.criterion) if a.criterion.get(k) != b.criterion.get(k))
    if fields:
        found.add("criterion")
    return [f for f in FLAGS if f in found], fields


def _same(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is y
    return abs(x - y) <= 1e-12 * max(1.0, abs(x), abs(y))


def _same_list(x: list[float] | None, y: list[float] | None) -> bool:
    if not x or not y:
        return not x and not y
    return all(_same(p, q) for p, q in zip(x, y, strict=True))


# ---- states -----------------------------------------------------------------------------------
def raw_specs(specs_dir: Path) -> dict[str, dict[str, Any]]:
    """Each spec file's plain YAML data, by id (a file that does not parse gives {})."""
    out = {}
    if specs_dir.is_dir():
        for path in sorted(specs_dir.glob("*.y*ml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                data = None
            out[path.stem] = data if isinstance(data, dict) else {}
    return out


def state_of(outcomes: list[dict[str, Any]], specs_dir: Path, label: str, commit: str | None) -> State:
    raw = raw_specs(specs_dir)
    return State(label, commit, {o["id"]: ClaimState.of(o, raw.get(o["id"], {})) for o in outcomes})


def work_tree(project: Project, overrides: dict[str, Any] | None = None) -> State:
    """The claims as `verify --no-run` finds them now, in this process."""
    from claims.spec import load_specs, with_config
    from claims.verify import verify

    specs = load_specs(project.specs_dir, project.root)
    if overrides:
        specs = {i: with_config(s, overrides) for i, s in specs.items()}
    outcomes, _ = verify(project, specs, run=False, overrides=overrides)
    return state_of([o.to_json() for o in outcomes], project.specs_dir, "work tree", None)


def git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def resolve(project: Project, rev: str | None) -> tuple[str, str]:
    """(commit, label) of a revision; the default is the last publish, else HEAD~1."""
    if git(project.root, "rev-parse", "--show-toplevel") is None:
        raise ClaimsError(f"{project.root}: not a git checkout, so there is no earlier state to compare with")
    if rev is None:
        published = git(project.root, "rev-parse", "--verify", "--quiet", f"{PUBLISHED_REF}^{{commit}}")
        if published:
            return published, f"last publish ({published[:12]})"
        rev = "HEAD~1"
    commit = git(project.root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if not commit:
        hint = " (the repository has a single commit)" if rev == "HEAD~1" else ""
        raise ClaimsError(f"unknown revision {rev!r}{hint}: give a commit, branch or tag")
    return commit, f"{rev} ({commit[:12]})"


@functools.cache
def engine_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _extract(archive: bytes, tree: Path) -> list[str]:
    """Unpack a revision's tar into `tree`; members the data filter refuses (an absolute link, a
    link or path leading out of the tree, a device) are skipped and named in the result."""
    skipped: list[str] = []

    def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as exc:
            skipped.append(f"{member.name} ({type(exc).__name__}: {exc})")
            return None

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter=keep)
    return skipped


def at_revision(project: Project, commit: str, label: str, overrides: dict[str, Any] | None = None,
                trust: bool = False) -> State:
    """The claims at a commit, computed in a copy of its tree (cached in build/diff/): from its specs
    and committed results, or, trusting it, by a `verify --no-run` that imports its code."""
    from claims.provenance import canonical_json

    mode = "trusted" if trust else "committed"
    key = hashlib.sha256(canonical_json([commit, engine_hash(), overrides or {}, mode]).encode()).hexdigest()[:16]
    cached = project.build_dir / "diff" / f"{commit[:12]}-{key}.json"
    if cached.is_file():
        try:
            data = json.loads(cached.read_text())
            return State(label, commit, {k: ClaimState(**v) for k, v in data.items()})
        except (ValueError, TypeError):
            pass  # a broken cache entry: compute it again
    prefix = git(project.root, "rev-parse", "--show-prefix") or ""
    with tempfile.TemporaryDirectory(prefix="claims-diff-") as tmp:
        tree = Path(tmp) / "tree"
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=project.root, capture_output=True)
        if archive.returncode != 0:
            raise ClaimsError(f"cannot read commit {commit[:12]}: {archive.stderr.decode().strip()}")
        for member in _extract(archive.stdout, tree):
            click.echo(f"diff: {label}: skipped {member}", err=True)
        root = tree / prefix
        if trust:
            outcomes = _verify_trusted(root, label, overrides, Path(tmp))
        else:
            from claims.revision import judge

            try:
                outcomes = judge(root, overrides)
            except ClaimsError as exc:
                raise ClaimsError(f"cannot check the claims at {label}: {exc.message}") from None
        state = state_of(outcomes, Project.at(root).specs_dir, label, commit)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({k: asdict(v) for k, v in state.claims.items()}, sort_keys=True))
    return state


def _verify_trusted(root: Path, label: str, overrides: dict[str, Any] | None, tmp: Path) -> list[dict[str, Any]]:
    """`verify --no-run` on a copy of the revision, in a subprocess: it imports (runs) its code."""
    click.echo(f"diff: --trust-revision: running the experiment code of {label} to check its results", err=True)
    report = tmp / "verify.json"
    args = [sys.executable, "-m", "claims", "--project", str(root)]
    for k, v in (overrides or {}).items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    proc = subprocess.run([*args, "verify", "--no-run", "--json", str(report)], cwd=tmp, capture_output=True,
                          env={**_env(), "CI": "1"}, timeout=1800)
    if proc.returncode not in (0, 1) or not report.is_file():
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ClaimsError(f"cannot check the claims at {label}: " + (why[-1] if why else f"exit {proc.returncode}"))
    return json.loads(report.read_text())["claims"]


def _env() -> dict[str, str]:
    """The environment of the trusted subprocess: this engine (the one running `diff`) first on its
    path, whatever else PYTHONPATH held left out."""
    import os

    engine = str(Path(__file__).resolve().parents[1])
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": engine}


def diff(project: Project, rev: str | None = None, to: str | None = None,
         overrides: dict[str, Any] | None = None, trust: bool = False) -> Diff:
    commit, label = resolve(project, rev)
    old = at_revision(project, commit, label, overrides, trust)
    if to is None:
        new = work_tree(project, overrides)
    else:
        new_commit, new_label = resolve(project, to)
        new = at_revision(project, new_commit, new_label, overrides, trust)
    return compare(old, new)


# ---- output -----------------------------------------------------------------------------------
def terminal(d: Diff) -> str:
    from claims.report import table

    head = f"claims: {d.old.label} -> {d.new.label}"
    changed = d.changed
    if not changed:
        return f"{head}\nno claim changed ({len(d.claims)} compared)"
    rows = [[("* " if c.headline else "  ") + c.id, c.cell("status"), c.cell("value"), c.cell("interval"),
             c.cell("verdict"), ", ".join(c.flags)] for c in changed]
    lines = [head, table(rows, ["claim (* headline)", "status", "value", "interval", "verdict", "changed"])]
    lines += _details(changed, lambda s: s)
    lines.append(summary(d))
    return "\n".join(lines)


def markdown(d: Diff) -> str:
    """For a pull-request comment."""
    out = [f"### Claims: {d.old.label} → {d.new.label}", ""]
    changed = d.changed
    if not changed:
        return "\n".join([*out, f"No claim changed ({len(d.claims)} compared)."]) + "\n"
    out += ["| Claim | Status | Value | Interval | Verdict | Changed |", "| --- | --- | --- | --- | --- | --- |"]
    for c in changed:
        name = f"{'**headline** ' if c.headline else ''}`{c.id}` {c.title}"
        cells = [name, c.cell("status"), c.cell("value"), c.cell("interval"), c.cell("verdict"), ", ".join(c.flags)]
        out.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    out += ["", *_details(changed, lambda s: f"- {s}"), "", summary(d)]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _details(changed: list[ClaimDiff], bullet: Any) -> list[str]:
    lines = []
    for c in changed:
        if "moved" in c.flags:
            lines.append(bullet(f"{c.id}: the value moved outside its old interval ({c.old.interval()}): "
                                f"{c.old.shown(c.old.value)} -> {c.new.shown(c.new.value)}"))
        for name in c.criterion_fields:
            was, now = (c.old.criterion.get(name), c.new.criterion.get(name))
            lines.append(bullet(f"{c.id}: criterion {name} was {json.dumps(was)}, now {json.dumps(now)}"))
        if "statement" in c.flags:
            lines.append(bullet(f"{c.id}: statement was: {c.old.statement or '(none)'}"))
            lines.append(bullet(f"{c.id}: statement now: {c.new.statement or '(none)'}"))
    return lines


def summary(d: Diff) -> str:
    heads = d.headline_status_changes
    return (f"{len(d.changed)} of {len(d.claims)} claims changed"
            + (f"; headline status changed: {', '.join(c.id for c in heads)}" if heads else ""))
