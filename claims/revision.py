"""Judging a revision of a project from its specs and committed results, without running its code.

`claims diff REV` reads another revision: a branch under review, a pull request. Importing its
experiment modules would run whatever their module-level code does, so by default nothing of the
revision is imported. Its state is what its own specs say of its own committed results:

  - the specs are YAML, loaded and validated as `verify` loads them (nothing imported);
  - a claim's result is the committed artifact of its experiment whose recorded (canonical) config
    agrees with every key the spec sets; among several, the one whose recorded code fingerprint
    matches the revision's files (read, not imported: claims.provenance.code_files), else the
    newest;
  - a result whose sidecar is damaged is corrupt, and one made by other code than the revision's
    files is stale, as `verify --no-run` would say; what its upstream results were is not checked;
  - assertions, intervals, power, statement and verdict are checked by the engine's own Verifier.

`claims diff --trust-revision` instead runs `verify --no-run` in a copy of the revision, which
imports (executes) its code, and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from claims import provenance as prov
from claims.errors import ClaimsError
from claims.node import Node
from claims.project import Project
from claims.runner import NodeState
from claims.spec import load_specs, with_config
from claims.store import Store, Stored
from claims.verify import Outcome, Verifier, propagate


def _agrees(wanted: Any, recorded: Any) -> bool:
    """Every key a spec sets has the recorded value (defaults filled by the module may be more)."""
    if isinstance(wanted, dict):
        return isinstance(recorded, dict) and all(k in recorded and _agrees(v, recorded[k]) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(recorded, list) and len(wanted) == len(recorded) and all(
            _agrees(a, b) for a, b in zip(wanted, recorded, strict=True))
    return wanted == recorded and isinstance(wanted, bool) == isinstance(recorded, bool)


class CommittedJudge(Verifier):
    """A Verifier whose nodes are found among committed results instead of made by importing."""

    def __init__(self, project: Project):  # no Runner: it would import the experiments
        self.project = project
        self.run, self.rerun = False, False
        self.runner = SimpleNamespace(project=project, store=Store(project), ran=[], reused=[])
        self._states: dict[Node, NodeState] = {}
        self._stored: dict[str, list[tuple[Node, dict[str, Any]]]] = {}
        for path in sorted(project.artifacts_dir.glob("*/*.provenance.json")) if project.artifacts_dir.is_dir() else []:
            try:
                sidecar = json.loads(path.read_bytes().decode("utf-8"))
                node = Node.make(sidecar["experiment"], sidecar["config"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a sidecar this engine can read: no claim can be judged by it
            if node.experiment == path.parent.name and f"{node.config_hash}.provenance.json" == path.name:
                self._stored.setdefault(node.experiment, []).append((node, sidecar))

    def node(self, experiment: str, config: dict[str, Any], where: str) -> Node:
        return self._find(experiment, config)

    def state(self, node: Node) -> NodeState:
        return self._states[node]

    def _find(self, experiment: str, config: dict[str, Any]) -> Node:
        candidates = [(n, s) for n, s in self._stored.get(experiment, []) if _agrees(config, s.get("config"))]
        if not candidates:
            node = Node.make(experiment, config)
            self._states[node] = NodeState(node, "missing", "no committed result of this experiment has this config")
            return node
        code = prov.code_files(experiment, self.project.root)
        same_code = [(n, s) for n, s in candidates if (s.get("key_material") or {}).get("code") == code]
        node, _ = max(same_code or candidates, key=lambda ns: _completed(ns[1]))
        stored = self.runner.store.read(node) or Stored(None, None, "is missing")
        if stored.problem:
            state = NodeState(node, "corrupt", stored.problem, sidecar=stored.sidecar)
        elif not same_code:
            changed = sorted(set(code) ^ set((stored.sidecar.get("key_material") or {}).get("code") or {}))
            state = NodeState(node, "stale", "its committed result was made by other code"
                              + (f" ({', '.join(changed[:3])})" if changed else ""), result=stored.result,
                              sidecar=stored.sidecar)
        else:
            state = NodeState(node, "fresh", "", stored.sidecar.get("key"), stored.result, stored.sidecar)
        self._states[node] = state
        return node


def _completed(sidecar: dict[str, Any]) -> str:
    steps = sidecar.get("lifecycle") if isinstance(sidecar.get("lifecycle"), list) else []
    return max((str(s.get("at", "")) for s in steps if isinstance(s, dict)), default="")


def judge(root: Path, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every claim of the project at `root`, judged from its committed results (as verify.json's
    `claims` list). Nothing under `root` is imported."""
    project = Project.at(root)
    for name, folder in (("specs", project.specs_dir), ("artifacts", project.artifacts_dir)):
        if not folder.resolve().is_relative_to(project.root):
            raise ClaimsError(f"pyproject.toml: [tool.claims] {name} = {str(folder)!r} is outside the revision's tree")
    specs = load_specs(project.specs_dir, project.root)
    if overrides:
        specs = {i: with_config(s, overrides) for i, s in specs.items()}
    judge_ = CommittedJudge(project)
    outcomes: dict[str, Outcome] = {}
    for spec_id, spec in specs.items():
        try:
            outcomes[spec_id] = judge_.check(spec)
        except ClaimsError as exc:
            outcomes[spec_id] = Outcome(spec.id, spec.title, spec.kind, "error", spec.headline, spec.section,
                                        problems=[exc.message])
    propagate(outcomes)
    return [o.to_json() for o in outcomes.values()]
