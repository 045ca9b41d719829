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
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from claims.errors import ExperimentError, SpecError
from claims.node import Node


def load_module(name: str, where: str) -> ModuleType:
    """Import an experiment module; errors name the spec field that points at it."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        raise ExperimentError(f"{where}: cannot import experiment {name!r} (no module named {missing!r})") from None
    except Exception as exc:  # an import-time bug in the experiment: report it, do not crash
        raise ExperimentError(f"{where}: importing {name!r} raised {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "run", None)):
        raise ExperimentError(f"{where}: experiment {name!r} does not expose run(config, ctx)")
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


def input_fingerprints(node: Node) -> dict[str, Any]:
    module = load_module(node.experiment, node.label)
    inputs = getattr(module, "inputs", None)
    return inputs(node.config) if inputs else {}


def key_packages(node: Node) -> tuple[str, ...]:
    return tuple(getattr(load_module(node.experiment, node.label), "PACKAGES", ()))
