"""Checking claims: run or reuse their experiments, then apply the rules of DESIGN.md.

1 spec valid   2 modules import   3 metric carries its interval at the stated level
4 provenance matches (else stale)   5 assert and control assert hold   6 statement renders,
with every number coming from the result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from claims import expr, referee
from claims.errors import ClaimsError, EvaluationFault, ExpressionError, GraphError
from claims.executor import LocalExecutor
from claims.experiment import make_node
from claims.node import Node
from claims.numbers import literal_numbers, render_statement
from claims.project import Project
from claims.result import Result
from claims.runner import NodeState, Runner
from claims.spec import ClaimSpec
from claims.verdict import control_verdict

STANDING = "verified"


@dataclass
class Outcome:
    id: str
    title: str
    kind: str
    status: str  # verified | failed | stale | error | blocked | not_applicable
    headline: bool
    section: str
    expect: str = "effect"  # effect | null
    verdict: str = ""  # the control words (claims.verdict), the same everywhere
    statement: str = ""
    metric: str = ""
    value: float | None = None
    ci: list[float] | None = None
    level: float | None = None
    n: int | None = None
    unit: str = ""
    method: str = ""
    assertion: dict[str, Any] = field(default_factory=dict)
    control: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    reason: str = ""
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    figure: Any = None  # the spec's figure as data: a name, a panel dict, or a list of them
    depends_on: list[str] = field(default_factory=list)
    power: dict[str, Any] = field(default_factory=dict)  # null claims: margin, mde, holds, text
    blocked_by: list[str] = field(default_factory=list)  # the claims that do not stand, upstream
    dirty: bool = False  # a result behind it was made from a work tree with uncommitted changes
    waiver: str = ""  # why a claim that does not stand is still shown (marked)
    baselines: list[dict[str, Any]] = field(default_factory=list)  # each: label, value, difference, ci, beats
    baseline_verdict: str = ""  # 'beats the strongest baseline (...)' / 'does not beat ...' (claims.referee)
    balance: dict[str, dict[str, Any]] = field(default_factory=dict)  # covariate: achieved, tolerance, ok
    rank: dict[str, Any] = field(default_factory=dict)  # p, draws, sided, alpha, smallest_p, ok
    headroom: dict[str, Any] = field(default_factory=dict)  # rate, range, room, need, ok
    audit: dict[str, Any] = field(default_factory=dict)  # labeller, blind, unique_items, ok
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> name -> {path, rows, sha256}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _node_info(runner: Runner, state: NodeState) -> dict[str, Any]:
    store = runner.store
    return {
        "experiment": state.node.experiment,
        "config_hash": state.node.config_hash,
        "config": state.node.config,
        "state": state.state,
        "reason": state.reason,
        "key": state.key,
        "result": runner.project.rel(store.result_path(state.node)),
        "provenance": runner.project.rel(store.sidecar_path(state.node)),
        "dirty": bool(((state.sidecar or {}).get("git") or {}).get("dirty")) if state.fresh else False,
    }


def check_interval(spec: ClaimSpec, result: Result) -> list[str]:
    """Rule 3: the metric exists and carries the interval the spec asks for."""
    names = result.namespace()
    if spec.metric not in result.estimates:
        if spec.kind == "count" and isinstance(names.get(spec.metric), int):
            return []
        return [f"metric {spec.metric!r} is not an estimate in the result (has: {sorted(result.estimates)})"]
    est = result.estimates[spec.metric]
    if spec.kind == "count":
        return [] if est.value is not None and float(est.value).is_integer() else [
            f"metric {spec.metric!r} is not a whole count ({est.value})"]
    problems = []
    if spec.kind == "estimate" and (est.value is None or math.isnan(est.value)):
        problems.append(f"metric {spec.metric!r} has no point estimate")
    if est.ci is None:
        problems.append(f"metric {spec.metric!r} has no interval (a bare point estimate cannot stand)")
    elif abs((est.level or 0) - spec.uncertainty.level) > 1e-9:
        problems.append(f"metric {spec.metric!r} interval level is {est.level}, the spec asks {spec.uncertainty.level}")
    elif not (est.method == spec.uncertainty.method or est.method.startswith(spec.uncertainty.method + "-")):
        problems.append(f"metric {spec.metric!r} interval method is {est.method!r}, the spec asks {spec.uncertainty.method!r}")
    return problems


class Verifier:
    def __init__(self, project: Project, *, run: bool = True, rerun: bool = False,
                 overrides: dict[str, Any] | None = None, executor: Any = None):
        self.project = project
        self.runner = Runner(project, clean=run)
        self.runner.overrides = dict(overrides or {})
        self.run = run
        self.rerun = rerun
        self.executor = executor or LocalExecutor()  # where stale nodes run (claims/executor/)

    def where(self, spec: ClaimSpec, field_name: str) -> str:
        return f"{self.project.rel(self.project.specs_dir / (spec.id + '.yaml'))}: {field_name}"

    def nodes(self, spec: ClaimSpec) -> dict[str, Node]:
        """The claim's nodes by role: main, control, and baseline:<i> for each baseline with its own
        experiment."""
        nodes = {"main": self.node(spec.experiment, spec.config, self.where(spec, "experiment"))}
        if spec.control_spec:
            c = spec.control_spec
            nodes["control"] = self.node(c.experiment, c.config, self.where(spec, "control.experiment"))
        for i, b in enumerate(spec.baselines):
            if b.experiment:
                nodes[f"baseline:{i}"] = self.node(b.experiment, b.config, self.where(spec, f"baselines[{i}].experiment"))
        return nodes

    def node(self, experiment: str, config: dict[str, Any], where: str) -> Node:
        return make_node(experiment, config, where)

    def state(self, node: Node) -> NodeState:
        if self.run:
            return self.executor.ensure(self.runner, node, force=self.rerun and node not in self.runner.ran)
        return self.runner.assess(node)

    def check(self, spec: ClaimSpec) -> Outcome:
        out = self._check(spec)
        out.verdict = control_verdict(spec.expect, out.control)
        if spec.power and not out.power:
            out.power = {"margin": spec.power.margin, "mde_expr": spec.power.mde, "why": spec.power.why,
                         "holds": None}
        if out.power:
            from claims.verdict import power_text

            out.power["text"] = power_text(out.power)
        return out

    def _check(self, spec: ClaimSpec) -> Outcome:
        out = Outcome(spec.id, spec.title, spec.kind, "failed", spec.headline, spec.section,
                      expect=spec.expect, metric=spec.metric, figure=spec.figure_data, depends_on=list(spec.depends_on),
                      waiver=spec.waiver or "")
        if spec.status != "required":
            out.status, out.reason = spec.status, spec.reason or ""
            return out
        out.control = ({"none": True, "why": spec.why_no_control} if spec.control == "none"
                       else {"experiment": spec.control.experiment, "description": spec.control.description,
                             "assert": spec.control.assert_, "role": spec.control.role})
        try:
            states = {role: self.state(node) for role, node in self.nodes(spec).items()}
        except GraphError as exc:  # a spec error: the command stops with exit 2
            raise GraphError(f"{spec.where}:{spec.line('experiment')}: experiment: {exc.message}") from None
        except ClaimsError as exc:
            out.status = "error"
            out.problems.append(exc.message)
            return out
        out.nodes = {role: _node_info(self.runner, s) for role, s in states.items()}
        out.dirty = any(n["dirty"] for n in out.nodes.values())
        stale = {role: s for role, s in states.items() if not s.fresh}
        if stale:
            out.status = "stale"
            out.problems += [f"{role} {s.node.label} is {s.state}: {s.reason}" for role, s in stale.items()]
            return out
        self.evaluate(spec, out, states)
        return out

    def evaluate(self, spec: ClaimSpec, out: Outcome, states: dict[str, NodeState]) -> None:
        result = states["main"].result
        namespace = result.namespace()
        if spec.uncertainty:
            namespace.setdefault("level", spec.uncertainty.level)
        out.problems += check_interval(spec, result)
        est = result.estimates.get(spec.metric)
        if est is not None:
            out.value, out.ci, out.level, out.n = est.value, list(est.ci) if est.ci else None, est.level, est.n
            out.unit, out.method = est.unit, est.method
        elif spec.kind == "count":
            out.value = namespace.get(spec.metric)
        if "control" in states:
            control_result = states["control"].result
            control_ns = control_result.namespace()
            namespace["control"] = control_ns
            cest = control_result.estimates.get(spec.metric)
            if cest is not None:
                out.control.update(value=cest.value, ci=list(cest.ci) if cest.ci else None, n=cest.n,
                                   level=cest.level, unit=cest.unit)
            holds = self._holds(spec.control.assert_, namespace, self.where(spec, "control.assert"), out)
            if holds is False:
                out.problems.append(f"control assertion is false: {spec.control.assert_}")
            holds = referee.check_control(spec, control_ns, out, holds)
            out.control["holds"] = holds
        holds = self._holds(spec.assert_, namespace, self.where(spec, "assert"), out)
        out.assertion = {"expr": spec.assert_, "holds": holds}
        if holds is False:
            out.problems.append(f"assertion is false: {spec.assert_}")
        if spec.power is not None:
            self._power(spec, namespace, out)
        referee.check_baselines(spec, namespace, {role: s.result for role, s in states.items()}, out)
        referee.check_audit(spec, namespace, out)
        referee.check_items(spec, states, out)
        typed = literal_numbers(spec.statement)
        if typed:
            out.problems.append(f"statement has hand-typed numbers {typed}: cite result fields instead")
        try:
            out.statement = render_statement(spec.statement, namespace, self.where(spec, "statement"))
        except ClaimsError as exc:
            out.problems.append(exc.message)
        if out.status != "error":
            out.status = STANDING if not out.problems else "failed"

    def _power(self, spec: ClaimSpec, namespace: dict[str, Any], out: Outcome) -> None:
        """A null stands only with its power: the design's MDE within the margin, or the metric's
        interval within ±margin (equivalence)."""
        power = spec.power
        out.power = {"margin": power.margin, "mde_expr": power.mde, "why": power.why, "holds": None}
        referee.check_headroom(spec, namespace, out)
        if power.mde:
            try:
                mde = expr.evaluate(power.mde, namespace, self.where(spec, "power.mde"))
            except ExpressionError as exc:
                if isinstance(exc, EvaluationFault):
                    out.status = "error"
                out.problems.append(exc.message)
                return
            if not isinstance(mde, int | float) or isinstance(mde, bool) or math.isnan(mde):
                out.status = "error"
                out.problems.append(f"{self.where(spec, 'power.mde')}: {power.mde!r} gives {mde!r}, not a number")
                return
            out.power.update(mde=float(mde), holds=bool(abs(mde) <= power.margin))
            if not out.power["holds"]:
                out.problems.append(f"underpowered null: the minimum detectable effect {mde:.3g} exceeds the "
                                    f"margin {power.margin:g}")
            return
        ci = out.ci
        if not ci:
            return  # check_interval has said why
        ref = spec.reference
        out.power.update(interval=list(ci), reference=ref,
                         holds=bool(ref - power.margin <= ci[0] and ci[1] <= ref + power.margin))
        if not out.power["holds"]:
            around = f" around {ref:g}" if ref else ""
            out.problems.append(f"null not shown: the interval {ci[0]:.3g} to {ci[1]:.3g} reaches beyond "
                                f"±{power.margin:g}{around}")

    @staticmethod
    def _holds(source: str, namespace: dict[str, Any], where: str, out: Outcome) -> bool | None:
        """Whether an assertion holds; an assertion that cannot be evaluated makes the claim `error`."""
        try:
            return bool(expr.evaluate(source, namespace, where))
        except EvaluationFault as exc:
            out.status = "error"
            out.problems.append(exc.message)
            return None
        except ClaimsError as exc:
            out.problems.append(exc.message)
            return None


def verify(project: Project, specs: dict[str, ClaimSpec], *, run: bool = True, rerun: bool = False,
           overrides: dict[str, Any] | None = None, executor: Any = None) -> tuple[list[Outcome], Runner]:
    verifier = Verifier(project, run=run, rerun=rerun, overrides=overrides, executor=executor)
    if run:
        verifier.executor.prepare(verifier, specs)  # Ray: every stale node runs now, in parallel
    outcomes = {spec_id: verifier.check(spec) for spec_id, spec in specs.items()}
    propagate(outcomes)
    return list(outcomes.values()), verifier.runner


def propagate(outcomes: dict[str, Outcome]) -> None:
    """A claim whose dependency (directly or through others) does not stand is blocked, naming the
    claims at the root of it. depends_on has no cycles (load_specs refuses them). A claim declared
    blocked or not applicable keeps its status and its own reason, with the dependency added."""
    original = {claim_id: o.status for claim_id, o in outcomes.items()}
    roots: dict[str, list[str]] = {}  # claim -> the non-standing claims upstream that are not blocked by others

    def root_causes(claim_id: str) -> list[str]:
        if claim_id not in roots:
            found: list[str] = []
            for dep in outcomes[claim_id].depends_on:
                if dep not in outcomes:
                    continue
                upstream = root_causes(dep)
                causes = upstream if upstream else ([] if original[dep] == STANDING else [dep])
                found += [c for c in causes if c not in found]
            roots[claim_id] = found
        return roots[claim_id]

    final = {claim_id: ("blocked" if root_causes(claim_id) and original[claim_id] not in ("blocked", "not_applicable")
                        else original[claim_id]) for claim_id in outcomes}
    for claim_id, outcome in outcomes.items():
        causes = root_causes(claim_id)
        if not causes:
            continue
        parts = []
        for dep in outcome.depends_on:
            if dep not in outcomes or (final[dep] == STANDING and not root_causes(dep)):
                continue
            via = [c for c in root_causes(dep) if c != dep]
            parts.append(f"{dep!r} ({_words(final[dep])}"
                         + (f", by {', '.join(f'{c!r} {_words(final[c])}' for c in via)})" if via else ")"))
        because = "depends on " + "; ".join(parts)
        outcome.blocked_by = causes
        if original[claim_id] in ("blocked", "not_applicable"):
            outcome.reason = f"{outcome.reason}; it also {because}" if outcome.reason else because
        else:
            outcome.status, outcome.reason = "blocked", because


def _words(status: str) -> str:
    return status.replace("_", " ")

