"""The Ray executor's driver: the claims DAG as Ray tasks.

A node is started when every node upstream of it is fresh. Then, on the driver: a fresh node is
reused (its files checked when a dependant will read them); a stale one becomes a task that runs
`Runner.ensure` in a worker, under the node's lock, on the shared store, with the resources its
module or claim declares. A sweep (units() in its module) first becomes one task per unfinished
unit, then the node's own task, which gathers them. Independent nodes and units run at once, as far
as the cluster's resources go; a node whose upstream failed is not run and carries that error.
A killed worker's task is retried by Ray (`MAX_RETRIES`) and resumes from its checkpoints.

Results come back through the store: after a task the driver reads the node again and checks that
it is fresh under the key it expected. The verifier then reads every claim's nodes from here.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any

from claims.errors import ClaimsError, ExperimentError
from claims.executor.cluster import Session, worker_environment
from claims.experiment import declared_resources, declared_units
from claims.node import Node
from claims.progress import Tally
from claims.resources import Resources
from claims.runner import Interrupted, NodeState, Runner, _raise_interrupted

#: Attempts after the first when a worker dies (killed, out of memory, its machine lost).
MAX_RETRIES = 3
CANCEL_WAIT_S = 10.0


@dataclass
class Job:
    node: Node
    unit: Any = None  # None: the node's own task
    started: float = 0.0

    @property
    def label(self) -> str:
        return self.node.label + (f" unit {self.unit!r}" if self.unit is not None else "")


class RayExecutor:
    """Runs every stale node of the selected claims on Ray (`prepare`), then answers the verifier."""

    name = "ray"

    def __init__(self, session: Session):
        self.session = session
        self.settled: dict[Node, NodeState] = {}
        self.failed: dict[Node, ClaimsError] = {}

    def prepare(self, verifier: Any, specs: dict[str, Any]) -> None:
        claimed: dict[Node, list[Resources | None]] = {}
        for spec in specs.values():
            if spec.status != "required":
                continue
            try:
                nodes = verifier.nodes(spec)
            except ClaimsError:
                continue  # check() reports it for the claim
            for role, node in nodes.items():
                claimed.setdefault(node, []).append(spec.resources if role == "main" else spec.control_spec.resources)
        Schedule(self, verifier.runner, claimed, force=verifier.rerun).run()

    def ensure(self, runner: Runner, node: Node, force: bool = False) -> NodeState:
        if node in self.failed:
            raise self.failed[node]
        if node in self.settled:
            return self.settled[node]
        raise ExperimentError(f"{node.label}: was not scheduled on Ray (an engine bug: please report it)")


class Schedule:
    def __init__(self, executor: RayExecutor, runner: Runner, claimed: dict[Node, list[Resources | None]],
                 force: bool):
        self.ex, self.runner, self.claimed = executor, runner, claimed
        self.ray = executor.session.ray
        self.forced = set(claimed) if force else set()
        self.deps: dict[Node, list[Node]] = {}
        self.dependants: dict[Node, list[Node]] = {}
        self.inflight: dict[Any, Job] = {}
        self.units_left: dict[Node, int] = {}
        self.material: dict[Node, dict[str, Any]] = {}
        self.need_files: set[Node] = set()  # fresh nodes run again because a dependant needs their blobs
        self.tally = Tally("ray")
        self._remote: dict[str, Any] = {}

    # ---- the graph ---------------------------------------------------------------------------
    def graph(self) -> list[Node]:
        """The nodes to visit, upstream first: the claims' nodes, and the upstream of each that is not
        fresh (as the local runner does: a fresh node's upstream is not looked at)."""
        order: list[Node] = []

        def visit(node: Node) -> None:
            if node in self.deps:
                return
            state = self.runner.assess(node)
            self.deps[node] = [] if state.fresh and node not in self.forced else list(state.upstream.values())
            for up in self.deps[node]:
                visit(up)
                self.dependants.setdefault(up, []).append(node)
            order.append(node)

        for target in self.claimed:
            try:
                self.runner.assess(target)
            except ClaimsError as exc:  # a cycle, a requires() that raises: the claim reports it
                self.ex.failed[target] = exc
                continue
            visit(target)
        return order

    def needs_files(self, node: Node) -> bool:
        """Whether a dependant may run and read this node's files (then missing blobs mean a rerun)."""
        return any((d in self.forced or not self.runner.assess(d).fresh) and self.runner.reads_files(d, node)
                   for d in self.dependants.get(node, []))

    def resources(self, node: Node) -> Resources:
        base = declared_resources(node)
        needs = [c.over(base) if c else base for c in self.claimed.get(node, [])] or [base]
        out = needs[0]
        for other in needs[1:]:
            out = out.widest(other)
        return out

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        waiting = [n for n in self.graph() if n not in self.ex.failed]
        self.tally.add(waiting=len(waiting), show=False)
        try:
            previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        except ValueError:  # not the main thread
            previous = None
        try:
            while waiting or self.inflight:
                waiting = self.start_ready(waiting)
                if not self.inflight:
                    break
                ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    self.finish(self.inflight.pop(ref), ref)
        except (KeyboardInterrupt, Interrupted):
            self.cancel()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.tally.show()
            self.tally.close()

    def start_ready(self, waiting: list[Node]) -> list[Node]:
        """Start every node whose upstream is settled (a reused node may free its dependants at once)."""
        progressed = True
        while progressed:
            progressed = False
            for node in list(waiting):
                ups = self.deps[node]
                failed = next((up for up in ups if up in self.ex.failed), None)
                if failed is None and not all(up in self.ex.settled for up in ups):
                    continue
                waiting.remove(node)
                self.tally.add(waiting=-1, show=False)
                progressed = True
                if failed is not None:
                    self.ex.failed[node] = self.ex.failed[failed]  # what the local executor would raise
                else:
                    self.start(node)
        return waiting

    def start(self, node: Node) -> None:
        force, need_files = node in self.forced, self.needs_files(node)
        try:
            self.tally.clear()  # the runner may log "reused ..."
            state = self.runner.reusable(node, force, need_files, "")
            if state is not None:
                self.ex.settled[node] = state
                self.tally.add(reused=1)
                return
            if need_files and self.runner.assess(node).fresh:
                self.need_files.add(node)
            self.runner.forget(node)
            state = self.runner.assess(node)  # its upstream is fresh: the key is known
            ups = {name: self.runner.assess(up) for name, up in state.upstream.items()}
            self.material[node] = self.runner.key_material(node, ups)
            needs = self.resources(node)
            if why := self.ex.session.infeasible(needs):
                raise ExperimentError(f"{node.label}: cannot run on Ray: {why}")
            units = declared_units(node)
        except ClaimsError as exc:
            self.fail(Job(node), exc)
            return
        if force and units:
            self.runner.store.clear_checkpoint(state.key)  # --rerun: the units too, once, before they run
        if units:
            from claims.units import missing

            todo = missing(self.runner.store, node, state.key, units)
            for unit in todo:
                self.submit(Job(node, unit), needs)
            self.units_left[node] = len(todo)
            if todo:
                return
        self.submit(Job(node), needs)

    def submit(self, job: Job, needs: Resources) -> None:
        from claims.executor import tasks

        kind = "run_node" if job.unit is None else "run_unit"
        if kind not in self._remote:
            self._remote[kind] = self.ray.remote(getattr(tasks, kind))
        options = {**needs.ray_options(), "max_retries": MAX_RETRIES, "retry_exceptions": [tasks.Preempted],
                   "name": f"claims {job.label}"[:200],
                   "runtime_env": {"env_vars": worker_environment()}}
        common = (self.runner.project, job.node, self.material[job.node])
        tail = (self.runner.overrides, self.runner.argv)
        if job.unit is None:
            force = job.node in self.forced
            discard = force and job.node not in self.units_left  # a sweep's units were just made for this run
            args = (*common, force, discard, job.node in self.need_files, *tail)
            self.tally.say(f"running {job.node.label} on ray ...")
        else:
            args = (*common, job.unit, *tail)
        ref = self._remote[kind].options(**options).remote(*args)
        job.started = time.monotonic()
        self.inflight[ref] = job
        self.tally.add(running=1)

    def finish(self, job: Job, ref: Any) -> None:
        self.tally.add(running=-1, show=False)
        try:
            report = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            report = {"error": ExperimentError(f"{job.label}: {_ray_failure(exc)}")}
        if "error" in report:
            self.fail(job, report["error"])
        elif job.unit is not None:
            self.tally.add(done=1)
            self.units_left[job.node] -= 1
            if self.units_left[job.node] == 0 and job.node not in self.ex.failed:
                self.submit(Job(job.node), self.resources(job.node))
        else:
            self.settle(job, report)

    def settle(self, job: Job, report: dict[str, Any]) -> None:
        node = job.node
        self.runner.forget(node)
        state = self.runner.assess(node)
        if not state.fresh:
            self.fail(job, ExperimentError(f"{node.label}: ran on a Ray worker, but its stored result is "
                                           f"{state.state} here ({state.reason or 'no reason given'})"))
            return
        self.ex.settled[node] = state
        if node.label in report["ran"]:
            self.runner.ran.append(node)
            self.tally.say(f"ran {node.label} on ray in {report['seconds']:.1f}s (key {state.key[:12]})")
            self.tally.add(done=1)
        else:  # another process made it while the worker waited for the node's lock
            self.runner.reused.append(node)
            self.tally.say(f"reused {node.label} (key {state.key[:12]}), made by another run")
            self.tally.add(reused=1)

    def fail(self, job: Job, error: ClaimsError) -> None:
        if job.node not in self.ex.failed:
            self.ex.failed[job.node] = error
        self.tally.say(f"failed: {error.message}")
        self.tally.add(failed=1)

    def cancel(self) -> None:
        """Ctrl-C or SIGTERM: stop the tasks (each records its run as interrupted, keeping checkpoints)."""
        refs = list(self.inflight)
        for ref in refs:
            self.ray.cancel(ref)
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)


def _ray_failure(exc: Exception) -> str:
    """A Ray error as one line: a worker that kept dying, a task retried until it gave up."""
    name = type(exc).__name__
    if "WorkerCrashed" in name or "ActorDied" in name or "NodeDied" in name:
        return (f"its Ray worker died on each of {MAX_RETRIES + 1} attempts (killed, out of memory, or its machine "
                "was lost); finished units and checkpoints are kept for the next run")
    if "TaskCancelled" in name:
        return "cancelled"
    cause = getattr(exc, "cause", None)
    if cause is not None and type(cause).__name__ == "Preempted":
        return f"interrupted on each of {MAX_RETRIES + 1} attempts ({cause})"
    first = str(exc).strip().splitlines()
    return f"Ray failed the task: {name}: {first[0] if first else ''}"
