"""Sweeps split into units of work (the protocol is in claims/experiment.py).

Each unit's output is checkpointed under the node's key (`checkpoints/<key>/_units/<unit-id>`) the
moment the unit finishes, under a lock of its own, so that a failure, an interruption or a killed
worker loses only the unfinished units, and two workers never compute one unit twice. The local
executor computes missing units inside run() (`ctx.unit_results()`); the Ray executor computes them
as tasks first, and run() then finds them all done.
"""

from __future__ import annotations

import shutil
from types import ModuleType
from typing import Any

import numpy as np

from claims.context import Checkpoint, Context
from claims.errors import ExperimentError
from claims.experiment import declared_units, load_module, unit_id
from claims.node import Node
from claims.store import Store

UNITS_DIR = "_units"


def outputs(store: Store, node: Node, key: str) -> Checkpoint:
    """The finished units of one run of a node: unit id -> output."""
    return Checkpoint(store.checkpoint_dir(key) / UNITS_DIR, node.label)


def missing(store: Store, node: Node, key: str, units: list[Any]) -> list[Any]:
    done = outputs(store, node, key)
    return [unit for unit in units if unit_id(unit) not in done]


class UnitContext(Context):
    """A unit's view of its node's context: the same upstream and cache, an rng seeded by
    (seed, unit), checkpoints of its own; it returns its data instead of saving files."""

    def __init__(self, parent: Context, unit: Any):
        super().__init__(parent.node, parent.key, parent._store, parent._upstream)
        self.unit = unit
        self.unit_id = unit_id(unit)
        self.rng = np.random.default_rng([self.seed, int(self.unit_id, 16)])

    def checkpoint(self, name: str) -> Checkpoint:
        return Checkpoint(self._store.checkpoint_dir(self.key) / f"_unit-{self.unit_id}" / name, self.node.label)

    def _refuse(self, what: str) -> ExperimentError:
        return ExperimentError(f"{self.node.label}: run_unit cannot {what}; a unit returns its data "
                               "(JSON or {name: array}) and run() saves files and records settings")

    def save_arrays(self, name: str, **arrays: np.ndarray) -> str:
        raise self._refuse("save files")

    def save_json(self, name: str, data: Any) -> str:
        raise self._refuse("save files")

    def record(self, **fingerprints: Any) -> None:
        raise self._refuse("record settings")

    def unit_results(self) -> list[Any]:
        raise self._refuse("read other units")


def compute(module: ModuleType, ctx: Context, unit: Any) -> None:
    """Run one unit, unless it is done (or another worker finished it while we waited for its lock),
    and checkpoint its output."""
    store, uid = ctx._store, unit_id(unit)
    done = outputs(store, ctx.node, ctx.key)
    with store.lock(ctx.node, f"unit-{uid}"):
        if uid in done:
            return
        value = module.run_unit(ctx.node.config, unit, UnitContext(ctx, unit))
        try:
            done[uid] = value
        except (TypeError, ValueError) as exc:
            raise ExperimentError(f"{ctx.node.label}: unit {unit!r} returned data that is neither JSON nor "
                                  f"{{name: array}} ({exc})") from None
    shutil.rmtree(store.checkpoint_dir(ctx.key) / f"_unit-{uid}", ignore_errors=True)


def results(ctx: Context) -> list[Any]:
    """The outputs of the node's units in units() order, computing the missing ones here."""
    module = load_module(ctx.node.experiment, ctx.node.label)
    units = declared_units(ctx.node)
    if units is None:
        raise ExperimentError(f"{ctx.node.label}: ctx.unit_results() needs units(config) and "
                              "run_unit(config, unit, ctx) in the module")
    done = outputs(ctx._store, ctx.node, ctx.key)
    out = []
    for unit in ctx.progress(units, total=len(units), desc="units"):
        if unit_id(unit) not in done:
            compute(module, ctx, unit)
        out.append(done[unit_id(unit)])  # read back in both executors: the same bytes either way
    return out
