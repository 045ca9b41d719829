"""What is fresh, stale or missing, and why; which stored artifacts no claim uses any more."""

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
        if spec.status != "required":
            continue
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
        record = runner.store.read_run_record(node) or {}
        last = (record.get("lifecycle") or [{}])[-1]
        last_run = f"{last.get('status')} at {last.get('at')}" if last else ""
        if last.get("error"):
            last_run += f": {last['error']}"
        reports.append(NodeReport(node.label, node.experiment, node.config_hash, state.state, state.reason,
                                  sorted(users.get(node, [])), last_run))
    known = {(r.experiment, r.config_hash) for r in reports}
    orphans = [f"{e}/{h}" for e, h in runner.store.artifact_nodes() if (e, h) not in known]
    return reports, orphans, errors
