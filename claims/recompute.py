"""`claims recompute ID`: rebuild a claim's estimates from the per-item rows committed in the
repository (claims/items.py), through its experiment's `recompute(items, config)`, and compare them
with the committed results. Nothing runs but that function; no cache is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claims.errors import ClaimsError
from claims.experiment import load_module
from claims.items import compare, decode
from claims.project import Project
from claims.provenance import sha256_bytes
from claims.spec import ClaimSpec
from claims.store import Store


@dataclass
class Recomputed:
    role: str
    node: str
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)  # estimate, committed, recomputed, ok
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows) and all(r[3] for r in self.rows)


def recompute_claim(project: Project, spec: ClaimSpec) -> list[Recomputed]:
    """One entry for the claim's result and one for its control's."""
    from claims.verify import Verifier

    verifier = Verifier(project, run=False)
    store = Store(project)
    out = []
    for role, node in verifier.nodes(spec).items():
        if role.startswith("baseline"):
            continue
        entry = Recomputed(role, node.label)
        out.append(entry)
        entry.problems += _recompute(project, store, spec, role, node, entry)
    return out


def _recompute(project: Project, store: Store, spec: ClaimSpec, role: str, node: Any, entry: Recomputed) -> list[str]:
    stored = store.read(node)
    if stored is None or stored.sidecar is None:
        return [f"{node.label} has no committed result"]
    sidecar = stored.sidecar
    items = sidecar.get("items") or {}
    if not items:
        return [f"{node.label} commits no per-item rows: it cannot be recomputed from the repository"]
    problems, rows = [], {}
    for name, meta in items.items():
        path = project.root / meta["path"]
        if not path.is_file():
            problems.append(f"{meta['path']} is missing")
            continue
        data = path.read_bytes()
        if sha256_bytes(data) != meta.get("sha256"):
            problems.append(f"{meta['path']} does not match the sidecar's hash: a row was edited")
        try:
            rows[name] = decode(data, meta["path"])
        except ClaimsError as exc:
            problems.append(exc.message)
    if problems and len(rows) < len(items):
        return problems
    module = load_module(node.experiment, node.label)
    function = getattr(module, "recompute", None)
    if not callable(function):
        return [*problems, f"{node.experiment} has no recompute(items, config) to rebuild its estimates from rows"]
    result = stored.result
    if result is None:  # the result or its rows were edited: compare with the committed file as it is
        import json

        from claims.result import Result

        result = Result.model_validate(json.loads((project.root / sidecar["output"]["path"]).read_text()))
    try:
        again = function(rows, node.config)
    except Exception as exc:  # the project's own code
        return [*problems, f"{node.experiment}.recompute raised {type(exc).__name__}: {exc}"]
    entry.rows = compare(result, again)
    names = {r[0] for r in entry.rows}
    if role == "main" and spec.metric not in names:
        problems.append(f"recompute() does not give the claim's metric {spec.metric!r}")
    problems += [f"{n}: committed {a}, recomputed {b}" for n, a, b, ok in entry.rows if not ok]
    return problems
