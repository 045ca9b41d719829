"""What is fresh, stale or missing, and why; the last run of each node (a run killed without a
trace shows as interrupted, not running); which claims' criteria changed after results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claims.errors import ClaimsError
from claims.project import Project
from claims.runner import Runner
from claims.spec import ClaimSpec
from claims.verify import Verifier


@dataclass
class NodeReport:
    label: str
    experiment: str
    config_hash: str
    state: str
    reason: str
    claims: list[str]
    last_run: str = ""

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def node_reports(project: Project, specs: dict[str, ClaimSpec]) -> tuple[list[NodeReport], list[str], list[str]]:
    """(reports for every node in the DAG upstream first, orphaned artifacts, spec errors)."""
    verifier = Verifier(project, run=False)
    runner: Runner = verifier.runner
    users: dict[Any, list[str]] = {}
    roots = []
    errors = []
    for spec in specs.values():
        try:
            nodes = verifier.nodes(spec)
        except ClaimsError as exc:
            errors.append(exc.message)
            continue
        for node in nodes.values():
            users.setdefault(node, []).append(spec.id)
            roots.append(node)
    reports = []
    for node in runner.closure(roots):
        state = runner.assess(node)
        last_run = last_run_of(runner, node)
        reports.append(NodeReport(node.label, node.experiment, node.config_hash, state.state, state.reason,
                                  sorted(users.get(node, [])), last_run))
    known = {(r.experiment, r.config_hash) for r in reports}
    orphans = [f"{e}/{h}" for e, h in runner.store.artifact_nodes() if (e, h) not in known]
    return reports, orphans, errors


def last_run_of(runner: Runner, node: Any) -> str:
    """'completed at T', 'failed at T: why', 'running since T' or 'interrupted (started T)'."""
    record = runner.store.read_run_record(node) or {}
    lifecycle = record.get("lifecycle") if isinstance(record.get("lifecycle"), list) else []
    last = lifecycle[-1] if lifecycle and isinstance(lifecycle[-1], dict) else {}
    if not last:
        return ""
    if last.get("status") == "running":
        if runner.store.lock_held(node):
            return f"running since {last.get('at')}"
        return f"interrupted (started {last.get('at')}; killed before it finished; partial work kept)"
    text = f"{last.get('status')} at {last.get('at')}"
    return text + (f": {last['error']}" if last.get("error") else "")


def criterion_marks(project: Project, specs: dict[str, ClaimSpec]) -> dict[str, list[str]]:
    """Claim id -> one line per criterion change made after results (from git)."""
    from claims.history_cache import history

    marks: dict[str, list[str]] = {}
    for spec in specs.values():
        for change in history(project, spec):
            if not change.after_results:
                continue
            when = f"{change.date[:10]} in {change.commit}" if change.commit else "uncommitted"
            note = f" (why: {change.documented})" if change.documented else " (no reason recorded)"
            marks.setdefault(spec.id, []).append(
                f"{change.field} changed after results ({when}): was {change.was!r}, now {change.now!r}{note}")
    return marks
