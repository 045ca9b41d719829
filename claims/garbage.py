"""Which stored results no claim uses any more, under any profile or --set seen.

A result is in use when some claim's DAG reaches it, with the spec as written or with any set of
overrides (`--profile`, `--set`) that a stored result was made under: the `overrides` a sidecar or
run record carries, and `profile: X` for every profile found in a stored config (older sidecars
did not record their overrides). Results of blocked and not-applicable claims are in use too.
Anything else under artifacts/ is garbage; `gc` lists it with the reason, and deletes it only
when asked.

A claim whose experiment cannot be resolved (its module fails to import, or is no experiment of
the project) uses results nobody can name: gc then refuses, listing why, rather than take that
claim's committed results for garbage. Under overrides, a config the experiment rejects only
means the claim is not run that way, and uses nothing there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims.errors import ClaimsError, SpecError
from claims.node import Node
from claims.project import Project
from claims.spec import ClaimSpec, with_config
from claims.store import Store


@dataclass
class Collection:
    in_use: set[tuple[str, str]] = field(default_factory=set)  # (experiment, config_hash)
    garbage: list[str] = field(default_factory=list)  # "experiment/config_hash"
    contexts: list[dict[str, Any]] = field(default_factory=list)  # the override sets considered
    unresolved: list[str] = field(default_factory=list)  # why a claim's DAG cannot be known

    @property
    def described(self) -> str:
        return ", ".join(_describe(c) for c in self.contexts)


def _describe(overrides: dict[str, Any]) -> str:
    return "as written" if not overrides else " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(overrides.items()))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seen_overrides(project: Project, current: dict[str, Any]) -> list[dict[str, Any]]:
    """Every override set a stored result was made under, plus none and the current one."""
    found: list[dict[str, Any]] = [{}]

    def add(overrides: Any) -> None:
        if isinstance(overrides, dict) and overrides not in found:
            found.append(overrides)

    add(dict(current))
    records = list(project.artifacts_dir.glob("*/*.provenance.json")) if project.artifacts_dir.is_dir() else []
    runs = project.cache_dir / "runs"
    records += list(runs.glob("*/*.json")) if runs.is_dir() else []
    for path in sorted(records):
        data = _read(path)
        add(data.get("overrides"))
        profile = (data.get("config") or {}).get("profile") if isinstance(data.get("config"), dict) else None
        if isinstance(profile, str):
            add({"profile": profile})
    return found


def collect(project: Project, specs: dict[str, ClaimSpec], current: dict[str, Any]) -> Collection:
    from claims.experiment import make_node

    collection = Collection(contexts=seen_overrides(project, current))
    for overrides in collection.contexts:
        roots: list[Node] = []
        for spec in specs.values():
            chosen = with_config(spec, overrides) if overrides else spec
            parts = [("experiment", chosen.experiment, chosen.config)]
            if chosen.control_spec:
                parts.append(("control.experiment", chosen.control_spec.experiment, chosen.control_spec.config))
            for name, experiment, config in parts:
                try:
                    roots.append(make_node(experiment, config, f"{spec.where}:{spec.line(*name.split('.'))}: {name}"))
                except SpecError as exc:
                    if not overrides:  # as written, every claim must resolve
                        collection.unresolved.append(exc.message)
                    # else: this claim cannot run under these overrides: it uses nothing there
                except ClaimsError as exc:  # the module does not import: what it uses is unknown
                    if exc.message not in collection.unresolved:
                        collection.unresolved.append(exc.message)
        try:
            nodes = upstream_closure(roots)
        except ClaimsError as exc:
            raise ClaimsError(f"cannot tell what is in use ({_describe(overrides)}): {exc.message}") from None
        collection.in_use |= {(n.experiment, n.config_hash) for n in nodes}
    if collection.unresolved:
        lines = "\n".join(f"  {why}" for why in collection.unresolved)
        raise GcRefused(f"gc: refusing to list or delete anything: {len(collection.unresolved)} claim "
                        f"experiment(s) cannot be resolved, so the results they use are unknown:\n{lines}")
    stored = Store(project).artifact_nodes()
    collection.garbage = [f"{e}/{h}" for e, h in stored if (e, h) not in collection.in_use]
    return collection


class GcRefused(ClaimsError):
    """A claim cannot be resolved: nothing is garbage until it can (exit 1)."""

    exit_code = 1


def upstream_closure(roots: list[Node]) -> set[Node]:
    """The nodes and everything they require, transitively (no keys computed, nothing loaded)."""
    from claims.experiment import upstream_nodes

    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(upstream_nodes(node).values())
    return seen
