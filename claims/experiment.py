"""The experiment protocol, and loading experiment modules by name.

An experiment is a module in the project that exposes:

    run(config, ctx) -> claims.Result          required: measures something
    Config                                     optional: a pydantic model; fills defaults, rejects
                                               unknown keys (the canonical config enters the key)
    requires(config) -> {name: (module, cfg)}  optional: upstream experiments (the DAG edges);
                                               read them in run() with ctx.upstream(name)
    inputs(config) -> {name: fingerprint}      optional: cheap fingerprints of external inputs
                                               (model weights id and hash, dataset hash)
    PACKAGES = ("countryinfo", ...)            optional: packages whose versions enter the key
                                               besides those its code imports (which enter it by
                                               themselves: data packages read by path, say)
    ROWS_ONLY = ("finetune", ...)              optional: requires() names read for their result
                                               and per-item rows only, never their files: the
                                               engine does not rerun those upstreams to remake
                                               files a fresh machine lacks (a rerun on another CPU
                                               may not reproduce them bit for bit), and
                                               ctx.upstream(name).file() is refused on them

Scale-out (read by `verify --executor ray`; the local executor honours units too):

    RESOURCES = {"num_cpus": 2, "num_gpus": 1, "memory": "24GB"}
                                               optional: what one task of this experiment needs
    resources(config) -> {...}                 optional: the same, per config (a GPU on the paper
                                               profile only); a claim's `resources:` overrides both
    units(config) -> [unit, ...]               optional: a sweep's units of work, e.g.
                                               [{"alpha": a, "seed": s} for a in alphas for s in seeds]
                                               (plain JSON values, distinct)
    run_unit(config, unit, ctx) -> data        with units(): one unit's work; returns JSON data or
                                               {name: ndarray}. Its ctx.rng is seeded by (seed, unit),
                                               so a unit gives the same numbers on any worker, in any
                                               order; ctx.checkpoint() is the unit's own.

A sweep's run(config, ctx) reads `ctx.unit_results()`: the units' outputs in units() order. Each
output is checkpointed under the node's key as soon as its unit finishes, so an interruption, a
failure or a killed worker loses only the unfinished units. Locally the units run one after the
other inside run(); on Ray each missing unit is its own task (the units of a node run in parallel),
and run() then only gathers. Every output is read back from its checkpoint in both cases, so the
result is byte-identical whichever executor made it.

    def units(config):
        return [{"alpha": a, "seed": s} for a in config["alphas"] for s in range(config["seeds"])]

    def run_unit(config, unit, ctx):
        neurons = ctx.rng.choice(d_ffn, size=config["k"], replace=False)   # seeded per unit
        return {"compliance": evaluate(scale(neurons, unit["alpha"]))}

    def run(config, ctx):
        rows = ctx.unit_results()                 # [{"compliance": ...}, ...] in units() order
        return Result(estimates={"slope": fit_slope(config["alphas"], rows)})
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from claims.errors import ExperimentError, SpecError
from claims.node import Node
from claims.provenance import ENGINE_PACKAGE, canonical_json, sha256_text
from claims.resources import Resources, declared

#: Folders whose modules may be experiments: project roots (Project.activate registers them).
_ROOTS: set[Path] = set()
#: Modules already found to be experiments of a registered root (checked once per process).
_CHECKED: set[str] = set()
_RULE = "an experiment is a module inside the project that defines run(config, ctx)"


def allow_root(root: Path) -> None:
    """Let modules under `root` (a project's folder) be experiments."""
    _ROOTS.add(root.resolve())


def _outside(path: Path) -> str:
    """What a module's place is when no experiment lives there (empty when it is in a project)."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return "an installed package"
    if any(path.is_relative_to(Path(p).resolve()) for p in (sys.base_prefix, sys.base_exec_prefix)):
        return "part of Python's standard library"
    if any(path.is_relative_to(Path(p).resolve()) for p in (sys.prefix, sys.exec_prefix)):
        return "an installed package"
    if not any(path.is_relative_to(root) for root in _ROOTS):
        return "outside the project"
    return ""


def check_location(name: str, where: str) -> None:
    """Refuse, before importing anything, a module that is not the project's own (`subprocess`,
    `pdb`, `os`, an installed package, the engine): its `run` would be called with the claim's
    config. Finding a dotted module imports its parent packages, so the top level is checked first."""
    if name in _CHECKED:
        return
    parts = name.split(".")
    if parts[0] == ENGINE_PACKAGE:
        raise SpecError(f"{where}: {name!r} is part of the claims engine, not an experiment: {_RULE}")
    for depth in (1, len(parts)):
        try:
            spec = importlib.util.find_spec(".".join(parts[:depth]))
        except (ImportError, ValueError):
            return  # not importable: the import reports it with its reason
        if spec is None:
            return
        places = [spec.origin] if spec.has_location and spec.origin else list(spec.submodule_search_locations or [])
        if not places:
            raise SpecError(f"{where}: {name!r} is built into Python, not an experiment of this project: {_RULE}")
        for place in places:
            what = _outside(Path(place).resolve())
            if what:
                raise SpecError(f"{where}: {name!r} is not an experiment of this project (it is {what}): {_RULE}")
    _CHECKED.add(name)


def _takes_config_and_ctx(run: object) -> bool:
    try:
        inspect.signature(run).bind(None, None)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def load_module(name: str, where: str) -> ModuleType:
    """Import an experiment module of the project; errors name the spec field that points at it."""
    check_location(name, where)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        raise ExperimentError(f"{where}: cannot import experiment {name!r} (no module named {missing!r})") from None
    except Exception as exc:  # an import-time bug in the experiment: report it, do not crash
        raise ExperimentError(f"{where}: importing {name!r} raised {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "run", None)):
        raise ExperimentError(f"{where}: experiment {name!r} does not expose run(config, ctx)")
    if not _takes_config_and_ctx(module.run):
        raise SpecError(f"{where}: {name}.run does not take (config, ctx): {_RULE}")
    return module


def canonical_config(module: ModuleType, config: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a config against the module's Config (if any) and return it with defaults filled."""
    model = getattr(module, "Config", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            return model.model_validate(config).model_dump(mode="json")
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: "
                + ("unknown field" if e["type"] == "extra_forbidden" else e["msg"])
                for e in exc.errors()
            )
            raise SpecError(f"{where}: {details}") from None
    try:
        return json.loads(json.dumps(config, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: config is not plain JSON data ({exc})") from None


def make_node(name: str, config: dict[str, Any], where: str) -> Node:
    module = load_module(name, where)
    return Node.make(name, canonical_config(module, config, f"{where}.config"))


def upstream_nodes(node: Node) -> dict[str, Node]:
    module = load_module(node.experiment, node.label)
    requires = getattr(module, "requires", None)
    if requires is None:
        return {}
    try:
        edges = requires(node.config)
    except Exception as exc:  # a bug in the experiment's requires(): report it, do not crash
        raise ExperimentError(f"{node.label}: requires() raised {type(exc).__name__}: {exc}") from None
    shape = "requires() must return {name: (module, config)}"
    if not isinstance(edges, dict):
        raise ExperimentError(f"{node.label}: {shape}, not {type(edges).__name__}")
    out = {}
    for name, edge in sorted(edges.items(), key=lambda kv: str(kv[0])):
        if not (isinstance(name, str) and isinstance(edge, tuple | list) and len(edge) == 2
                and isinstance(edge[0], str) and isinstance(edge[1], dict)):
            raise ExperimentError(f"{node.label}: {shape}; entry {name!r} is {edge!r}")
        out[name] = make_node(edge[0], edge[1], f"{node.label}.requires.{name}")
    return out


def rows_only(node: Node) -> frozenset[str]:
    """The upstream edges the experiment reads for their result and per-item rows only (its module's
    ROWS_ONLY: a tuple of requires() names): the engine never reruns those upstreams to remake their
    large files, which a fresh machine lacks and which another CPU may not reproduce bit for bit."""
    module = load_module(node.experiment, node.label)
    names = getattr(module, "ROWS_ONLY", ())
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ExperimentError(f"{node.label}: ROWS_ONLY must be a tuple of requires() names, not {names!r}")
    unknown = sorted(set(names) - set(upstream_nodes(node)))
    if unknown:
        raise ExperimentError(f"{node.label}: ROWS_ONLY names {', '.join(map(repr, unknown))}, which requires() "
                              "does not return")
    return frozenset(names)


def input_fingerprints(node: Node) -> dict[str, Any]:
    module = load_module(node.experiment, node.label)
    inputs = getattr(module, "inputs", None)
    return inputs(node.config) if inputs else {}


def key_packages(node: Node) -> tuple[str, ...]:
    return tuple(getattr(load_module(node.experiment, node.label), "PACKAGES", ()))


def declared_resources(node: Node) -> Resources:
    """What one task of the node needs: `resources(config)` if the module has it, else `RESOURCES`."""
    module = load_module(node.experiment, node.label)
    fn = getattr(module, "resources", None)
    if callable(fn):
        try:
            raw = fn(node.config)
        except Exception as exc:  # a bug in the experiment's resources(): report it, do not crash
            raise ExperimentError(f"{node.label}: resources() raised {type(exc).__name__}: {exc}") from None
        return declared(raw, f"{node.label}: resources()")
    return declared(getattr(module, "RESOURCES", None), f"{node.label}: RESOURCES")


def unit_id(unit: Any) -> str:
    """A unit's name in checkpoints and locks: the hash of its canonical JSON."""
    return sha256_text(canonical_json(unit))[:16]


def declared_units(node: Node) -> list[Any] | None:
    """The node's units of work (None for an experiment that is not a sweep), validated."""
    module = load_module(node.experiment, node.label)
    units = getattr(module, "units", None)
    if units is None:
        return None
    if not callable(getattr(module, "run_unit", None)):
        raise ExperimentError(f"{node.label}: declares units() but no run_unit(config, unit, ctx)")
    try:
        out = units(node.config)
    except Exception as exc:
        raise ExperimentError(f"{node.label}: units() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(out, list | tuple):
        raise ExperimentError(f"{node.label}: units() must return a list, not {type(out).__name__}")
    seen: dict[str, Any] = {}
    for unit in out:
        try:
            uid = unit_id(unit)
        except (TypeError, ValueError):
            raise ExperimentError(f"{node.label}: unit {unit!r} is not plain JSON data") from None
        if uid in seen:
            raise ExperimentError(f"{node.label}: units() lists {unit!r} twice")
        seen[uid] = unit
    return list(json.loads(canonical_json(list(out))))
