"""A claim's dossier: what its page shows, from its outcome and its provenance sidecars.

The provenance table of each run (the claim's experiment, and its control) lists the code that
made it (each file with its sha256, linked to a rendered copy of the source inside the site),
the config, the inputs and the model fingerprint, package versions, seed, run time and commit.
"""

from __future__ import annotations

import string
from typing import Any

from claims.project import Project
from claims.provenance import sha256_file
from site_build.common.records import ClaimRecord, NodeRecord, completed_at, model_line
from site_build.common.render import compact_json


def source_href(relpath: str) -> str:
    return f"source/{relpath}.html"


def _model(node: NodeRecord) -> Any:
    """The model behind a run, as its experiment fingerprinted it (inputs), recorded it or configured it."""
    material = (node.sidecar or {}).get("key_material", {})
    for where in (material.get("inputs", {}), (node.sidecar or {}).get("recorded", {}), node.config):
        for name in ("model", "weights", "profile"):
            if where.get(name) is not None:
                return where[name]
    return None


def _code(project: Project, node: NodeRecord, root: str) -> list[dict[str, Any]]:
    rows = []
    for relpath, sha in sorted(node.code.items()):
        path = project.root / relpath
        current = sha256_file(path) if path.is_file() else None
        rows.append({"path": relpath, "sha256": sha, "current": current, "changed": current != sha,
                     "href": root + source_href(relpath) if current else None})
    return rows


def _run(project: Project, node: NodeRecord, root: str, data: dict[str, str | None], front: Any) -> dict[str, Any]:
    sidecar = node.sidecar or {}
    material = sidecar.get("key_material", {})
    main_file = node.experiment.replace(".", "/")
    code = _code(project, node, root)
    source = next((c for c in code if c["path"] in (f"{main_file}.py", f"{main_file}/__init__.py")), None)
    model = _model(node)
    return {
        "role": node.role,
        "experiment": node.experiment,
        "source": source,
        "state": node.state,
        "reason": node.reason,
        "fresh": node.fresh,
        "config": compact_json(node.config),
        "config_hash": node.config_hash,
        "key": node.key,
        "code_hash": sidecar.get("code_hash"),
        "code": code,
        "inputs": {k: v for k, v in sorted(material.get("inputs", {}).items())},
        "model": compact_json(model) if isinstance(model, dict | list) else model,
        "model_line": model_line(model) if isinstance(model, dict) else None,
        "model_block": isinstance(model, dict | list),
        "upstream": sorted(sidecar.get("upstream", {}).items()),
        "packages": sorted(sidecar.get("packages", {}).items()),
        "seed": sidecar.get("seed"),
        "recorded": {k: v for k, v in sorted(sidecar.get("recorded", {}).items())},
        "wall_time_s": sidecar.get("wall_time_s"),
        "completed": completed_at(sidecar),
        "git": sidecar.get("git") or {},
        "platform": sidecar.get("platform") or {},
        "result_path": node.result_path,
        "result_sha256": (sidecar.get("output") or {}).get("sha256"),
        "provenance_path": node.provenance_path,
        "result_href": root + data[node.result_path] if data.get(node.result_path) else None,
        "provenance_href": root + data[node.provenance_path] if data.get(node.provenance_path) else None,
        "too_large": [p for p in (node.result_path, node.provenance_path) if p in data and data[p] is None],
        "commit_href": front.commit_link((sidecar.get("git") or {}).get("commit")),
    }


def template_parts(statement: str) -> list[tuple[str, str]]:
    """A statement template as ("text", ...) and ("field", "{name:fmt}") pieces, so that a page can
    show it as wrapping prose with its fields marked."""
    parts: list[tuple[str, str]] = []
    try:
        parsed = list(string.Formatter().parse(" ".join(statement.split())))
    except ValueError:
        return [("text", " ".join(statement.split()))]
    for literal, name, fmt, conv in parsed:
        if literal:
            parts.append(("text", literal))
        if name is not None:
            parts.append(("field", "{" + name + (f"!{conv}" if conv else "") + (f":{fmt}" if fmt else "") + "}"))
    return parts


def dossier(project: Project, record: ClaimRecord, root: str, figure: str, data: dict[str, str | None],
            front: Any, figure_label: str = "") -> dict[str, Any]:
    """Everything the claim page template shows, as plain data (`figure`: the chart's HTML, or "";
    `data`: result and sidecar paths -> their copies in the site, None when too large to copy)."""
    o = record.outcome
    control = o.control or {}
    return {
        "record": record,
        "o": o,
        "spec": record.spec,
        "fmt": record.value_format,
        "figure": figure,
        "figure_note": _figure_note(record, figure),
        "control": control,
        "runs": [_run(project, node, root, data, front) for node in record.nodes.values()],
        "template_statement": " ".join(record.spec.statement.split()),
        "template_parts": template_parts(record.spec.statement),
        "has_numbers": record.required or o.value is not None or bool(o.ci),
        "extras": record.extras,
        "figure_label": figure_label if figure else "",
        "history": [c.to_json() for c in record.history],
    }


def _figure_note(record: ClaimRecord, figure: str) -> str:
    if figure:
        return ""
    if record.nodes and not all(n.fresh for n in record.nodes.values()):
        return "Chart withheld: the result is not fresh, so it would show numbers that do not stand."
    return ""
