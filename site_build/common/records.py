"""What the site and the paper show about each claim, gathered before anything is written.

`gather(project)` checks every claim with `claims.verify.verify(..., run=False)`: nothing runs,
a stale result shows as stale, so a page can never disagree with the artifacts. Each claim's
record carries its outcome, its spec (for display hints), and the results and provenance
sidecars of its experiment and control, read only when they are fresh.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claims.errors import BuildError
from claims.numbers import metric_format as value_format
from claims.project import Project
from claims.result import Result
from claims.spec import ClaimSpec, load_specs
from claims.verify import STANDING, Outcome, verify

#: Statuses that are not expected to stand (listed with their reason, never shown as standing).
NOT_REQUIRED = ("blocked", "not_applicable")


@dataclass
class NodeRecord:
    """One experiment run behind a claim (its main measurement or its control)."""

    role: str  # main | control
    experiment: str
    state: str  # fresh | missing | stale | corrupt
    reason: str
    config: dict[str, Any]
    config_hash: str
    key: str | None
    result_path: str
    provenance_path: str
    result: Result | None = None  # only when fresh
    sidecar: dict[str, Any] | None = None  # only when fresh
    code: dict[str, str] = field(default_factory=dict)  # relpath -> sha256 (recorded when fresh, else current)

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


@dataclass
class ClaimRecord:
    outcome: Outcome
    spec: ClaimSpec
    spec_path: str
    value_format: str
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)  # claims.history.Change, oldest first

    @property
    def id(self) -> str:
        return self.outcome.id

    @property
    def status(self) -> str:
        return self.outcome.status

    @property
    def standing(self) -> bool:
        return self.outcome.status == STANDING

    @property
    def required(self) -> bool:
        return self.outcome.status not in NOT_REQUIRED

    @property
    def provenance_key(self) -> str | None:
        main = self.nodes.get("main")
        return main.key if main else None

    @functools.cached_property
    def lead(self) -> Any:
        """The number this claim's card, page and table row lead with (site_build.common.readings)."""
        from site_build.common.readings import lead

        return lead(self)

    @functools.cached_property
    def control_readings(self) -> list[Any]:
        from site_build.common.readings import control_readings

        return control_readings(self)

    @functools.cached_property
    def extras(self) -> dict[str, Any]:
        """Baselines, balance, draws, role and waiver when the engine reports them (else empty)."""
        from site_build.common.readings import engine_extras

        return engine_extras(self)

    def result(self, role: str) -> Result | None:
        node = self.nodes.get(role)
        return node.result if node else None

    def data(self) -> dict[str, Any]:
        """Everything a page shows about this claim, as JSON data (for keys and the export)."""
        nodes = {}
        for role, node in self.nodes.items():
            nodes[role] = {
                "experiment": node.experiment, "state": node.state, "reason": node.reason,
                "config": node.config, "config_hash": node.config_hash, "key": node.key,
                "result_path": node.result_path, "provenance_path": node.provenance_path,
                "result": node.result.model_dump(mode="json") if node.result else None,
                "sidecar": node.sidecar, "code": node.code,
            }
        return {"outcome": self.outcome.to_json(), "spec": self.spec.model_dump(mode="json", by_alias=True),
                "spec_path": self.spec_path, "value_format": self.value_format, "nodes": nodes,
                "history": [c.to_json() for c in self.history]}


@dataclass
class Study:
    """Every claim of a project, in spec order, and facts about the build as a whole."""

    project: Project
    records: list[ClaimRecord]
    results_as_of: str | None  # latest completion date among fresh results
    built_on: str | None  # from SOURCE_DATE_EPOCH, else None (so that rebuilds are byte-identical)
    models: list[dict[str, Any]] = field(default_factory=list)  # fingerprints of the models behind fresh results

    def get(self, claim_id: str) -> ClaimRecord | None:
        return next((r for r in self.records if r.id == claim_id), None)

    @property
    def not_standing(self) -> list[ClaimRecord]:
        return [r for r in self.records if r.required and not r.standing]

    def data(self) -> dict[str, Any]:
        return {"claims": [r.data() for r in self.records], "results_as_of": self.results_as_of,
                "built_on": self.built_on, "models": self.models}


def _load_json(project: Project, relpath: str, what: str) -> Any:
    path = project.root / relpath
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BuildError(f"{relpath}: cannot read {what}: {exc}") from None


def _node(project: Project, role: str, info: dict[str, Any]) -> NodeRecord:
    from claims.provenance import code_files

    node = NodeRecord(role, info["experiment"], info["state"], info.get("reason", ""), info["config"],
                      info["config_hash"], info.get("key"), info["result"], info["provenance"])
    if node.fresh:  # verify has just checked these bytes against the sidecar hash
        node.result = Result.model_validate(_load_json(project, node.result_path, "result"))
        node.sidecar = _load_json(project, node.provenance_path, "provenance sidecar")
        node.code = dict(node.sidecar.get("key_material", {}).get("code", {}))
    else:
        node.code = code_files(node.experiment, project.root)
    return node


def completed_at(sidecar: dict[str, Any]) -> str | None:
    done = [s.get("at") for s in sidecar.get("lifecycle", []) if s.get("status") == "completed"]
    return done[-1] if done and done[-1] else None


def built_on() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d")
    except ValueError:
        raise BuildError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds") from None


def gather(project: Project) -> Study:
    """Check every claim without running anything and read what its pages need."""
    from claims.history_cache import history

    specs = load_specs(project.specs_dir, project.root)
    outcomes, _ = verify(project, specs, run=False)
    records, dates = [], []
    for outcome in outcomes:
        spec = specs[outcome.id]
        record = ClaimRecord(outcome, spec, spec.where, value_format(spec), history=history(project, spec))
        for role, info in outcome.nodes.items():
            record.nodes[role] = _node(project, role, info)
            sidecar = record.nodes[role].sidecar
            if sidecar and completed_at(sidecar):
                dates.append(completed_at(sidecar))
        records.append(record)
    as_of = max(dates)[:10] if dates else None
    return Study(project, records, as_of, built_on(), models_of(records))


def models_of(records: list[ClaimRecord]) -> list[dict[str, Any]]:
    """The distinct model fingerprints (dicts an experiment's inputs() gave as `model`) behind
    fresh results, so that every page can say which weights its numbers come from."""
    from claims.provenance import canonical_json

    found: dict[str, dict[str, Any]] = {}
    for record in records:
        for node in record.nodes.values():
            model = ((node.sidecar or {}).get("key_material", {}).get("inputs") or {}).get("model")
            if isinstance(model, dict):
                found.setdefault(canonical_json(model), model)
    return [found[k] for k in sorted(found)]


def model_line(model: dict[str, Any]) -> str:
    """A model fingerprint in one line: id, file, dtype, and the short hashes of its weights."""
    parts = [str(model[k]) for k in ("model_id", "file") if model.get(k)]
    if model.get("dtype"):
        parts.append(f"run in {model['dtype']}")
    hashes = [f"{k.removesuffix('_sha256').replace('_', ' ')} sha256 {str(v)[:12]}" for k, v in sorted(model.items())
              if k.endswith("sha256") and v]
    return ", ".join(parts + hashes)


def source_files(study: Study) -> dict[str, Path]:
    """Experiment source files the claims rest on: relpath -> file (for the site's source pages)."""
    files: dict[str, Path] = {}
    for record in study.records:
        for node in record.nodes.values():
            for relpath in node.code:
                path = study.project.root / relpath
                if path.is_file():
                    files[relpath] = path
    return dict(sorted(files.items()))
