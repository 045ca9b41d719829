"""Executors: where the stale nodes of the claims DAG run.

    local  (default) in this process, one node after another (`Runner.ensure`)
    ray    as Ray tasks (claims/executor/schedule.py): independent nodes, and a sweep's units,
           in parallel, on this machine or a cluster; workers share the artifact store

Either way a node's result is the same bytes under the same key, so each reuses what the other made.
An executor exposes `prepare(verifier, specs)` (run what the selected claims need; a no-op locally)
and `ensure(runner, node, force)` (the node's fresh state, or the error that stopped it). Ray is
imported only when `--executor ray` runs something, so `verify --no-run` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from claims.node import Node
from claims.project import Project
from claims.runner import NodeState, Runner

EXECUTORS = ("local", "ray")


class LocalExecutor:
    name = "local"

    def prepare(self, verifier: Any, specs: dict[str, Any]) -> None:
        """Nothing ahead of time: `ensure` runs each node when a claim asks for it."""

    def ensure(self, runner: Runner, node: Node, force: bool = False) -> NodeState:
        return runner.ensure(node, force=force)


@contextlib.contextmanager
def open_executor(kind: str, project: Project, address: str | None = None, run: bool = True,
                  num_cpus: int | None = None) -> Iterator[Any]:
    """The executor for one command; with `ray`, connected (or a local Ray started) for its duration.
    Nothing is started when nothing will run (`run=False`, i.e. verify --no-run)."""
    if kind == "local" or not run:
        yield LocalExecutor()
        return
    from claims.executor.cluster import connect
    from claims.executor.schedule import RayExecutor

    with connect(project, address, num_cpus) as session:
        yield RayExecutor(session)
