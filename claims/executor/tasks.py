"""What a Ray worker runs: one node (`Runner.ensure`, under the node's lock) or one unit of a sweep.

Both work on the store the driver named (a shared filesystem path on a cluster) and return a small
report; results travel through the store, never through Ray's object store. A task first removes
the debris that a killed attempt of it left on this host, and checks that it computes the same key
as the driver (the same code, inputs and packages), so that a worker with another checkout fails
loudly instead of storing a result under a key it did not compute.
"""

from __future__ import annotations

import os
import platform
import time
import traceback
from typing import Any

from claims import provenance as prov
from claims.errors import ClaimsError, ExecutorError, ExperimentError
from claims.node import Node
from claims.project import Project
from claims.runner import Interrupted, NodeState, Runner, describe_change


class Preempted(Exception):
    """A task stopped by a signal (a preempted or drained machine): Ray runs it again, and the new
    attempt resumes from the checkpoints the stopped one left."""


def _runner(project: Project, overrides: dict[str, Any], argv: list[str]) -> Runner:
    if not project.root.is_dir():
        raise ExecutorError(f"the Ray worker on {platform.node()} cannot see the project at {project.root}: every "
                            "machine of the cluster needs the checkout and the store at the same paths "
                            "(a shared filesystem)")
    os.environ["CLAIMS_CACHE"] = str(project.cache_dir)  # experiments' own caches follow the store
    project.activate()
    runner = Runner(project)
    runner.overrides, runner.argv = overrides, argv
    return runner


def _upstream(runner: Runner, node: Node, expected: dict[str, Any]) -> tuple[str, dict[str, NodeState]]:
    """The node's key and fresh upstream, as this worker sees them; refuses a key other than the driver's."""
    state = runner.assess(node)
    ups = {name: runner.assess(up) for name, up in state.upstream.items()}
    if state.key is None:
        stale = next(f"{name!r} is {s.state}" for name, s in ups.items() if not s.fresh)
        raise ExperimentError(f"{node.label}: its upstream {stale} on this worker, fresh on the driver "
                              "(do worker and driver share one store?)")
    if state.key != prov.cache_key(expected):
        why = describe_change(expected, runner.key_material(node, ups))
        raise ExperimentError(f"{node.label}: the Ray worker on {platform.node()} computes another key than the "
                              f"driver ({why}): workers need the same checkout and packages as the driver")
    return state.key, ups


def run_node(project: Project, node: Node, material: dict[str, Any], force: bool, discard: bool,
             need_files: bool, overrides: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Make one node fresh in this worker (with its blobs, when `need_files`): {"ran": [labels],
    "reused": [labels], "seconds": s} or {"error": e}."""
    started = time.monotonic()
    try:
        runner = _runner(project, overrides, argv)
        key, _ = _upstream(runner, node, material)
        runner.store.clean_node_debris(node, key)
        runner.ensure(node, force=force, need_files=need_files, discard_checkpoint=discard)
        return {"ran": [n.label for n in runner.ran], "reused": [n.label for n in runner.reused],
                "seconds": time.monotonic() - started}
    except (KeyboardInterrupt, Interrupted) as exc:  # the run record says interrupted; Ray tries again
        raise Preempted(f"{node.label}: {exc or 'interrupted'}") from None
    except ClaimsError as exc:
        return {"error": exc}
    except Exception as exc:  # the engine itself failed in the worker: report it, never lose it
        return {"error": ExperimentError(f"{node.label}: the Ray worker raised {type(exc).__name__}: {exc}")}


def run_unit(project: Project, node: Node, material: dict[str, Any], unit: Any,
             overrides: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Compute one unit of a sweep into its checkpoint: {"seconds": s} or {"error": e}."""
    from claims.context import Context
    from claims.experiment import load_module
    from claims.units import compute

    started = time.monotonic()
    runner = None
    try:
        runner = _runner(project, overrides, argv)
        key, ups = _upstream(runner, node, material)
        runner.store.clean_node_debris(node, key)
        views = runner.views(ups, runner.rows_only(node))
        compute(load_module(node.experiment, node.label), Context(node, key, runner.store, views), unit)
        return {"seconds": time.monotonic() - started}
    except (KeyboardInterrupt, Interrupted) as exc:
        raise Preempted(f"{node.label} unit {unit!r}: {exc or 'interrupted'}") from None
    except ClaimsError as exc:
        return {"error": exc}
    except Exception as exc:  # the experiment's run_unit raised: recorded like a failed run
        if runner is None:
            return {"error": ExperimentError(f"{node.label}: the Ray worker raised {type(exc).__name__}: {exc}")}
        return {"error": _unit_failed(runner, node, material, unit, exc)}


def _unit_failed(runner: Runner, node: Node, material: dict[str, Any], unit: Any, exc: Exception) -> ExperimentError:
    """Record a failed unit in the node's run record (lifecycle, scrubbed traceback); the error to show."""
    from claims.runner import _now

    scrub = prov.PathScrubber(runner.project.root, runner.project.cache_dir)
    error = scrub(f"{type(exc).__name__}: {exc}")
    runner.store.write_run_record(node, {
        "experiment": node.experiment, "config_hash": node.config_hash, "key": prov.cache_key(material),
        "pid": os.getpid(), "overrides": runner.overrides, "unit": unit, "traceback": scrub(traceback.format_exc()),
        "lifecycle": [{"status": "failed", "at": _now(), "error": f"unit {unit!r}: {error}"}],
    })
    where = scrub(str(runner.store.run_record_path(node)))
    return ExperimentError(f"{node.label} unit {unit!r} raised {error} (traceback in {where})")
