"""Run-or-reuse over the experiment DAG.

A node is fresh when its stored sidecar carries the key computed now from (code, config, inputs,
upstream outputs, package versions) and the stored result matches the sidecar's hash. Otherwise
it is missing, stale (with what changed) or corrupt, and `ensure` reruns it under a per-node
file lock, after making its upstream fresh. Two processes asking for the same node: one runs,
the other waits for the lock, finds the node fresh and reuses it. The same holds for Ray workers
sharing the store (claims/executor/): each task is an `ensure` in a worker process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from claims import interrupt
from claims import provenance as prov
from claims.context import Context, Upstream
from claims.errors import ExperimentError, GraphError
from claims.experiment import input_fingerprints, key_packages, load_module, rows_only, upstream_nodes
from claims.node import Node
from claims.progress import log
from claims.project import Project
from claims.result import Result
from claims.store import Store, Stored, atomic_write_json, clean_debris, result_bytes

#: Bump when the meaning of a stored result changes, so that every key changes deliberately.
#: 3: the packages part holds the packages the experiment's code imports (and its PACKAGES), not a
#: fixed list; a result stored under 2 stays fresh while its rule-2 key still matches (`legacy_key`).
ENGINE_KEY_VERSION = 3
LEGACY_ENGINE_KEY_VERSIONS = (2,)


@dataclass
class NodeState:
    node: Node
    state: str  # fresh | missing | stale | corrupt
    reason: str = ""
    key: str | None = None
    result: Result | None = None
    sidecar: dict[str, Any] | None = None
    upstream: dict[str, Node] = field(default_factory=dict)

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


class Interrupted(BaseException):
    """Raised in place of SIGTERM so that a killed run is recorded as interrupted."""


#: In a node's checkpoint folder: where its partial work is being made (provenance.kernel_stamp).
CHECKPOINT_STAMP = "made_under.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Runner:
    def __init__(self, project: Project, clean: bool = False):
        self.project = project
        project.activate()  # its modules are the experiments (claims.experiment.check_location)
        self.store = Store(project)
        self._states: dict[Node, NodeState] = {}
        self._assessing: list[Node] = []
        self.overrides: dict[str, Any] = {}  # the --profile / --set this run was made under (gc reads it)
        self.argv: list[str] = list(sys.argv)  # the command recorded in sidecars (a Ray worker gets the driver's)
        self.ran: list[Node] = []
        self.reused: list[Node] = []
        self.not_reproduced: list[tuple[Node, str]] = []  # reruns at an unchanged key whose output differs
        self._walks: prov.Walks = {}  # import walks of experiment modules, one per module in this command
        self._rows: dict[Node, frozenset[str]] = {}  # each node's ROWS_ONLY edges, read once per command
        if clean:  # temp files of writes interrupted by a kill (their process is gone)
            for path in clean_debris(project.artifacts_dir, project.cache_dir):
                log(f"removed debris of an interrupted write: {project.rel(path)}")

    # ---- assessing -------------------------------------------------------------------------
    def key_material(self, node: Node, upstream: dict[str, NodeState]) -> dict[str, Any]:
        imported = prov.imported_packages(node.experiment, self.project.root, self.project.cache_dir, self._walks)
        return {
            "engine": ENGINE_KEY_VERSION,
            "experiment": node.experiment,
            "config": node.config,
            "code": prov.code_files(node.experiment, self.project.root, self._walks),
            "inputs": input_fingerprints(node),
            "upstream": {name: s.sidecar["output"]["sha256"] for name, s in sorted(upstream.items())},
            "packages": prov.package_versions((*imported, *key_packages(node))),
        }

    def legacy_material(self, node: Node, material: dict[str, Any], sidecar: dict[str, Any]) -> dict[str, Any] | None:
        """The key material under the rule a stored result was keyed by, when that is an older rule
        still honoured (2: a fixed list of packages in every key), else None. Code, config, inputs and
        upstream are the same under both rules; only the engine number and the packages differ."""
        engine = (sidecar.get("key_material") or {}).get("engine")
        if engine not in LEGACY_ENGINE_KEY_VERSIONS:
            return None
        packages = prov.package_versions((*prov.LEGACY_KEY_PACKAGES, *key_packages(node)))
        return {**material, "engine": engine, "packages": packages}

    def assess(self, node: Node) -> NodeState:
        """Fresh, missing, stale or corrupt, and why (memoised for this run)."""
        if node in self._states:
            return self._states[node]
        if node in self._assessing:
            chain = " -> ".join(n.label for n in [*self._assessing[self._assessing.index(node):], node])
            raise GraphError(f"requires() forms a cycle: {chain}")
        load_module(node.experiment, node.label)
        self._assessing.append(node)
        try:
            edges = upstream_nodes(node)
            ups = {name: self.assess(up) for name, up in edges.items()}
        finally:
            self._assessing.pop()
        not_fresh = {name: s for name, s in ups.items() if not s.fresh}
        stored = self.store.read(node)
        if not_fresh:
            name, s = next(iter(not_fresh.items()))
            state = NodeState(node, "stale", f"upstream {name!r} is {s.state}", upstream=edges)
            state.sidecar = stored.sidecar if stored else None
        else:
            material = self.key_material(node, ups)
            key = prov.cache_key(material)
            if stored is None:
                state = NodeState(node, "missing", "never run", key, upstream=edges)
            elif stored.problem:
                state = NodeState(node, "corrupt", stored.problem, key, sidecar=stored.sidecar, upstream=edges)
            elif stored.sidecar.get("key") != key:
                legacy = self.legacy_material(node, material, stored.sidecar)
                if legacy is not None and stored.sidecar.get("key") == prov.cache_key(legacy):
                    state = NodeState(node, "fresh", "", key, stored.result, stored.sidecar, edges)
                else:
                    why = describe_change(stored.sidecar.get("key_material", {}), legacy or material)
                    state = NodeState(node, "stale", why, key, stored.result, stored.sidecar, edges)
            else:
                state = NodeState(node, "fresh", "", key, stored.result, stored.sidecar, edges)
        self._states[node] = state
        return state

    def closure(self, nodes: list[Node]) -> list[Node]:
        """Nodes and everything upstream of them, upstream first."""
        order: list[Node] = []
        seen: set[Node] = set()

        def visit(n: Node) -> None:
            if n in seen:
                return
            seen.add(n)
            for up in self.assess(n).upstream.values():
                visit(up)
            order.append(n)

        for n in nodes:
            visit(n)
        return order

    # ---- running ---------------------------------------------------------------------------
    def ensure(self, node: Node, force: bool = False, need_files: bool = False,
               discard_checkpoint: bool | None = None) -> NodeState:
        """Make a node fresh (running it and its stale upstream) and return its state. A forced run
        discards the node's checkpoints unless `discard_checkpoint` is False (its units were just
        computed for this run)."""
        interrupt.check()
        state = self.reusable(node, force, need_files, "", fresh_look=False)
        if state is not None:
            return state
        rows = self.rows_only(node)
        while True:  # again when an upstream rerun at its stored key came back different: what was
            changed = len(self.not_reproduced)  # reused before it may be stale now (Runner._run)
            ups = {name: self.ensure(up, need_files=name not in rows) for name, up in self.assess(node).upstream.items()}
            if len(self.not_reproduced) == changed:
                break
        if ups and (state := self.reusable(node, force, need_files, ": its upstream reran with identical output")):
            return state
        with self.store.lock(node):
            # another process may have produced it while we waited for the lock
            state = self.reusable(node, force, need_files, ", made by another run")
            discard = force if discard_checkpoint is None else discard_checkpoint
            return state if state is not None else self._run(node, ups, discard_checkpoint=discard)

    def reusable(self, node: Node, force: bool, need_files: bool, why: str, fresh_look: bool = True
                  ) -> NodeState | None:
        """The node's state when it can be reused as it is (re-assessed when `fresh_look`), else None."""
        if fresh_look:
            self.forget(node)
        state = self.assess(node)
        if not state.fresh or force or (need_files and self._files_missing(state)):
            return None
        if node not in self.reused and node not in self.ran:
            self.reused.append(node)
            log(f"reused {node.label} (key {state.key[:12]}){why}")
        return state

    def forget(self, node: Node) -> None:
        """Assess the node afresh next time (another process, e.g. a Ray worker, has written it)."""
        self._states.pop(node, None)

    def _files_missing(self, state: NodeState) -> bool:
        for name, sha in state.result.files.items():
            problem = self.store.blob_problem(sha)
            if problem:
                log(f"{state.node.label}: file {name!r} is {problem} in the blob cache: running it again")
                return True
        return False

    def _run(self, node: Node, ups: dict[str, NodeState], discard_checkpoint: bool = False) -> NodeState:
        module = load_module(node.experiment, node.label)
        material = self.key_material(node, ups)
        key = prov.cache_key(material)
        if discard_checkpoint:
            self.store.clear_checkpoint(key)
        self._stamp_checkpoint(node, key)
        ctx = Context(node, key, self.store, self.views(ups, self.rows_only(node)))
        stored = self.store.read(node)  # a result at this very key: the run must reproduce it (files lost, --force)
        earlier = stored if stored and not stored.problem and stored.sidecar.get("key") == key else None
        scrub = prov.PathScrubber(self.project.root, self.project.cache_dir)
        record: dict[str, Any] = {
            "experiment": node.experiment,
            "config_hash": node.config_hash,
            "key": key,
            "pid": os.getpid(),
            "overrides": self.overrides,
            "lifecycle": [*self._unfinished_attempts(node, key), {"status": "running", "at": _now()}],
        }
        self.store.write_run_record(node, record)
        log(f"running {node.label} ...")
        started = time.monotonic()
        previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _raise_interrupted)
        except ValueError:  # not the main thread
            previous = None
        try:
            interrupt.check()  # a Ctrl-C lost while the node was prepared (a library import)
            raw = module.run(node.config, ctx)
        except (KeyboardInterrupt, Interrupted):
            interrupt.handled()
            record["lifecycle"].append({"status": "interrupted", "at": _now()})
            record["checkpoint"] = scrub(str(self.store.checkpoint_dir(key)))
            self.store.write_run_record(node, record)
            log(f"interrupted {node.label}: partial work kept for resuming")
            raise
        except ValidationError as exc:  # an Estimate or Result the experiment built is invalid
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            error = scrub(f"{exc.title}{' ' + where if where else ''}: {err['msg'].removeprefix('Value error, ')}")
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": error})
            self.store.write_run_record(node, record)
            raise ExperimentError(f"{node.label} built an invalid result: {error}") from None
        except ExperimentError as exc:  # the engine's own message (e.g. a corrupt checkpoint step)
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": scrub(exc.message)})
            self.store.write_run_record(node, record)
            raise
        except Exception as exc:
            tb = scrub(traceback.format_exc())
            error = scrub(f"{type(exc).__name__}: {exc}")
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": error})
            record["traceback"] = tb
            self.store.write_run_record(node, record)
            raise ExperimentError(
                f"{node.label} raised {error} (traceback in {scrub(str(self.store.run_record_path(node)))})"
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        wall = time.monotonic() - started
        result = self._validated(node, raw, ctx, record)
        self._check_recompute(node, module, result, ctx, record)
        reproduction = self._reproduction(node, earlier, result)
        record["lifecycle"].append({"status": "completed", "at": _now()})
        sidecar = scrub({
            "experiment": node.experiment,
            "config": node.config,
            "config_hash": node.config_hash,
            "key": key,
            "key_material": material,
            "code_hash": prov.sha256_text(prov.canonical_json(material["code"])),
            "seed": ctx.seed,
            "recorded": ctx.recorded,
            "fingerprints": {k: prov.sha256_text(prov.canonical_json(v))[:16] for k, v in ctx.recorded.items()},
            "upstream": {n: {"experiment": s.node.experiment, "config_hash": s.node.config_hash,
                             "sha256": s.sidecar["output"]["sha256"]} for n, s in ups.items()},
            "packages": prov.package_versions((*prov.RECORDED_PACKAGES, *material["packages"])),
            "platform": prov.platform_info(),
            "environment": prov.recorded_environment(),
            "argv": prov.redact_argv(self.argv),
            "overrides": self.overrides,
            "git": self._git(material),
            "wall_time_s": round(wall, 3),
            "lifecycle": record["lifecycle"],
            **({"reproduction": reproduction} if reproduction else {}),
        })
        self.store.write(node, result, sidecar, ctx.items)
        self.store.write_run_record(node, record)
        self.store.clear_checkpoint(key)
        log(f"ran {node.label} in {wall:.1f}s (key {key[:12]})")
        self.ran.append(node)
        # fresh for the key it ran under (re-assessing could see code edited during the run)
        state = NodeState(node, "fresh", "", key, result, self.store.read(node).sidecar,
                          {name: s.node for name, s in ups.items()})
        if reproduction and not reproduction["reproduced"]:
            # its output changed under an unchanged key: every state assessed before (a node downstream
            # found fresh against the earlier output) is re-assessed, so that what read it runs again
            self._states.clear()
        self._states[node] = state
        return state

    def views(self, ups: dict[str, NodeState], rows: frozenset[str] = frozenset()) -> dict[str, Upstream]:
        """What run() reads of its (fresh) upstream: results and their files (not the files of a
        ROWS_ONLY edge, which nothing made sure of)."""
        return {name: Upstream(name, s.node, s.result, self.store, files=name not in rows) for name, s in ups.items()}

    def rows_only(self, node: Node) -> frozenset[str]:
        """The node's ROWS_ONLY edges (claims.experiment.rows_only), read once per command."""
        if node not in self._rows:
            self._rows[node] = rows_only(node)
        return self._rows[node]

    def reads_files(self, dependant: Node, node: Node) -> bool:
        """Whether `dependant` reads `node` through an edge that is not ROWS_ONLY (then a run of the
        dependant needs node's files)."""
        rows = self.rows_only(dependant)
        return any(up == node and name not in rows for name, up in self.assess(dependant).upstream.items())

    def _stamp_checkpoint(self, node: Node, key: str) -> None:
        """Partial work resumes only where it was made: a checkpoint left by a run on another CPU, or
        under other kernel settings (or before checkpoints recorded where they were made), is
        discarded with one line, so that no result is stitched from two machines' floating point.
        Then the checkpoint records where this run makes it. A sweep's units are left alone: Ray
        tasks make them, on whichever machines the cluster has, before the node's own run."""
        folder = self.store.checkpoint_dir(key)
        path = folder / CHECKPOINT_STAMP
        here = prov.kernel_stamp()
        from claims.units import UNITS_DIR  # a sweep's units: made by Ray tasks before this run, kept

        partial = [p for p in folder.iterdir() if p.name not in (CHECKPOINT_STAMP, UNITS_DIR)] if folder.is_dir() else []
        if partial:
            try:
                made = json.loads(path.read_text())
            except (OSError, ValueError):
                made = None
            if made != here:
                where = f"on {_stamp_text(made)}" if made else "before checkpoints recorded where they were made"
                log(f"{node.label}: its partial work was made {where}, this run is on {_stamp_text(here)}: "
                    "discarded, not resumed")
                for entry in partial:  # the units stay, as the docstring says
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, here)

    def _unfinished_attempts(self, node: Node, key: str) -> list[dict[str, Any]]:
        """The lifecycle of earlier attempts at this key that never finished, so that a run resuming
        from their checkpoint says so. One still marked running was killed (we hold its lock now)."""
        previous = self.store.read_run_record(node) or {}
        lifecycle = previous.get("lifecycle")
        if previous.get("key") != key or not isinstance(lifecycle, list) or not lifecycle \
                or not all(isinstance(step, dict) for step in lifecycle):
            return []
        last = lifecycle[-1].get("status")
        if last == "running":
            return [*lifecycle, {"status": "interrupted", "at": _now(), "note": "its process ended without a trace "
                                 "(killed, or its machine was lost)"}]
        return lifecycle if last == "interrupted" else []

    def _git(self, material: dict[str, Any]) -> dict[str, Any]:
        """Commit and dirtiness; code the experiment imports that git does not track makes it dirty."""
        state = dict(prov.git_state(self.project.root))
        if state.get("commit"):
            untracked = prov.untracked_files(self.project.root, material["code"])
            if untracked:
                state.update(dirty=True, untracked=untracked)
        return state

    def _check_recompute(self, node: Node, module: Any, result: Result, ctx: Context, record: dict[str, Any]) -> None:
        """The rows a run saved must give back its estimates through the module's recompute()."""
        if not ctx.items or not callable(getattr(module, "recompute", None)):
            return
        from claims.items import compare

        try:
            again = module.recompute(ctx.item_rows, node.config)
        except Exception as exc:  # the experiment's own code: its error, with where it was
            error = f"recompute() raised {type(exc).__name__}: {exc}"
        else:
            bad = [r for r in compare(result, again) if not r[3]]
            error = "; ".join(f"{n}: run gave {a}, recompute() on its rows gives {b}" for n, a, b, _ in bad)
        if error:
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": error})
            self.store.write_run_record(node, record)
            raise ExperimentError(f"{node.label}: its per-item rows do not give back its estimates: {error}")

    def _reproduction(self, node: Node, stored: Stored | None, result: Result) -> dict[str, Any] | None:
        """When a node reruns at the key of a result already stored (its files were lost, or --force),
        whether it gave the same output back. Nothing in the key differs, so a different output
        comes from the machine (another CPU's floating point, a thread count) or from code that is
        not deterministic, and everything downstream that read the earlier output goes stale: say
        so, with the estimates that moved and the platform the earlier result was made on."""
        if stored is None:
            return None
        earlier, before = stored.sidecar, stored.result
        previous = earlier.get("output", {}).get("sha256")
        if previous == prov.sha256_bytes(result_bytes(result)):
            return {"previous_output": previous, "reproduced": True}
        moved = {}
        for name, est in result.estimates.items():
            old = before.estimates.get(name)
            if old is None or old.value != est.value:
                moved[name] = [None if old is None else old.value, est.value]
        files = sorted(n for n in set(result.files) | set(before.files) if result.files.get(n) != before.files.get(n))
        largest = max(moved.items(), key=lambda kv: _change(*kv[1]), default=None)
        out = {"previous_output": previous, "reproduced": False, "previous_platform": earlier.get("platform"),
               "previous_commit": (earlier.get("git") or {}).get("commit"), "estimates_moved": len(moved),
               "files_differ": files, "largest_move": {"estimate": largest[0], "was": largest[1][0],
                                                       "now": largest[1][1]} if largest else None}
        where = (f"; largest move {largest[0]}: {largest[1][0]} -> {largest[1][1]}" if largest else "") + (
            f"; files differ: {', '.join(files[:3])}{' ...' if len(files) > 3 else ''}" if files else "")
        summary = f"{len(moved)} of {len(result.estimates)} estimates moved{where}"
        self.not_reproduced.append((node, summary))
        log(f"{node.label} did NOT reproduce its stored result at the same key ({summary}); "
            f"the earlier one was made on {_platform_text(earlier.get('platform'))}, this one on "
            f"{_platform_text(prov.platform_info())}: results downstream of it go stale")
        return out

    def _validated(self, node: Node, raw: Any, ctx: Context, record: dict[str, Any]) -> Result:
        try:
            result = raw if isinstance(raw, Result) else Result.model_validate(raw)
            result = result.model_copy(update={"files": {**result.files, **ctx.files}})
            prov.canonical_json(result.model_dump(mode="json"))
        except (ValidationError, ValueError, TypeError) as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ") if isinstance(exc, ValidationError) \
                else str(exc)
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": f"bad result: {message}"})
            self.store.write_run_record(node, record)
            raise ExperimentError(f"{node.label} returned an invalid result: {message}") from None
        leak = prov.credential_path(result.model_dump(mode="json"))
        if leak:  # results are committed and published: a key in one would leak with it
            message = f"{leak} holds what looks like a credential (a key or token); results are committed and " \
                      "published, so this one is refused"
            record["lifecycle"].append({"status": "failed", "at": _now(), "error": f"bad result: {message}"})
            self.store.write_run_record(node, record)
            raise ExperimentError(f"{node.label} returned an invalid result: {message}")
        return result


def _change(old: float | None, new: float | None) -> float:
    """How far an estimate moved, relative to its size (inf when it appeared or turned undefined)."""
    if old is None or new is None:
        return float("inf")
    return abs(new - old) / max(abs(old), 1e-12)


def _stamp_text(stamp: dict[str, Any]) -> str:
    kernels = " ".join(f"{k}={v}" for k, v in (stamp.get("kernels") or {}).items())
    return f"{stamp.get('cpu') or 'an unrecorded CPU'} ({kernels or 'no kernel settings'})"


def _platform_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unrecorded platform"
    return ", ".join(str(info[k]) for k in ("cpu", "cpu_capability", "machine", "cpu_count") if info.get(k) is not None)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Name what differs between two key materials: 'code changed: pipeline/x.py', ..."""
    if not old:
        return "sidecar has no key material"
    changes = []
    for part in ("engine", "experiment", "config"):
        if old.get(part) != new.get(part):
            changes.append(f"{part} changed")
    for part in ("code", "inputs", "upstream", "packages"):
        a, b = old.get(part, {}), new.get(part, {})
        names = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if names:
            shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            changes.append(f"{part} changed: {shown}")
    return "; ".join(changes) or "key differs"
