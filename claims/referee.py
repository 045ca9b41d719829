"""The checks a referee applies to a claim, beyond its own assertion (DESIGN.md, "Baselines and
controls, as a referee reads them"). Each adds a line to the outcome's problems when it fails,
naming the spec field, and records what it found for the renderers:

    baselines       the paired difference over the strongest trivial baseline on the same items
    balance         a matched control reports the balance it reached on each covariate
    rank            a rank p-value among random draws: the draws can reach the threshold, the
                    sidedness is stated, and no control is called beaten above the threshold
    headroom/range  a null's equivalence margin fits in the room its bounded scale leaves
    audit           a judge audit was labelled blind, by a named labeller, on enough unique items
    items           a headline's results (and its control's) commit the per-item rows behind them
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from claims.spec import ClaimSpec

if TYPE_CHECKING:
    from claims.runner import NodeState
    from claims.verify import Outcome

BEATS, DOES_NOT_BEAT = "beats the strongest baseline", "does not beat the strongest baseline"


def lookup(namespace: dict[str, Any], name: str) -> Any:
    """A dotted field (control.gain, composition.clean) in a result namespace; None when absent."""
    value: Any = namespace
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _where(spec: ClaimSpec, field: str) -> str:
    parts = [int(p) if p.isdigit() else p for p in field.split(".")]
    return f"{spec.where}:{spec.line(*parts)}: {field}"


# ---- baselines ------------------------------------------------------------------------------

def check_baselines(spec: ClaimSpec, namespace: dict[str, Any], results: dict[str, Any], out: Outcome) -> None:
    """Each baseline's paired difference (claim minus baseline, positive favours the claim) with its
    interval; the strongest is the one with the smallest difference. The claim must say of it what
    `versus_baseline` says (beats: the interval lies above zero)."""
    if not spec.baselines:
        return
    rows = []
    for i, b in enumerate(spec.baselines):
        ns = results[f"baseline:{i}"].namespace() if b.experiment else namespace
        diff, ci = _number(lookup(ns, b.difference)), lookup(ns, b.difference + "_ci")
        row = {"label": b.label, "value": _number(lookup(ns, b.value)) if b.value else None,
               "difference": diff, "ci": list(ci) if isinstance(ci, list | tuple) and len(ci) == 2 else None,
               "field": b.difference, "experiment": b.experiment}
        if diff is None or row["ci"] is None or any(_number(c) is None for c in row["ci"]):
            out.problems.append(f"{_where(spec, f'baselines.{i}.difference')}: {b.difference!r} is not an estimate "
                                "with an interval in the result (the paired difference over the baseline)")
            row["beats"] = None
        else:
            row["beats"] = bool(row["ci"][0] > 0)
        rows.append(row)
    out.baselines = rows
    scored = [r for r in rows if r["beats"] is not None]
    if not scored:
        out.baseline_verdict = "baselines not evaluated"
        return
    strongest = min(scored, key=lambda r: r["difference"])
    strongest["strongest"] = True
    # the statement may cite it: {strongest_baseline.label}, {strongest_baseline.value:.2f},
    # {strongest_baseline.difference:+.2f} ({strongest_baseline.difference_ci[0]:+.2f} to ...)
    namespace.setdefault("strongest_baseline", {"label": strongest["label"], "value": strongest["value"],
                                                "difference": strongest["difference"],
                                                "difference_ci": strongest["ci"]})
    beats = strongest["beats"]
    out.baseline_verdict = f"{BEATS if beats else DOES_NOT_BEAT} ({strongest['label']})"
    expected = spec.baseline_expectation
    shown = f"{strongest['difference']:+.3g} ({strongest['ci'][0]:+.3g} to {strongest['ci'][1]:+.3g})"
    if expected == "beats" and not beats:
        out.problems.append(f"{_where(spec, 'baselines')}: the claim {DOES_NOT_BEAT}, {strongest['label']!r}: "
                            f"paired difference {shown} does not lie above zero")
    elif expected == "does_not_beat" and beats:
        out.problems.append(f"{_where(spec, 'versus_baseline')}: the claim says it does not beat its strongest "
                            f"baseline, but it beats {strongest['label']!r}: paired difference {shown}")


# ---- the control: role, balance, rank ---------------------------------------------------------

def check_control(spec: ClaimSpec, control_ns: dict[str, Any], out: Outcome, holds: bool | None) -> bool | None:
    """Balance and rank checks of the control; returns whether the control assertion stands (a
    negative control is never beaten by a rank p above the threshold)."""
    control = spec.control_spec
    _check_balance(spec, control_ns, out)
    if control.rank is not None:
        holds = _check_rank(spec, control_ns, out, holds)
    invalid = [f"not balanced on {name}" if info["achieved"] is not None else f"no balance reported for {name}"
               for name, info in out.balance.items() if not info["ok"]]
    if out.rank and not out.rank.get("ok"):
        invalid.append("too few draws")
    if invalid:  # a control that could not have killed the claim is not evidence for it either way
        out.control["invalid"] = "; ".join(invalid)
    return holds


def _check_balance(spec: ClaimSpec, control_ns: dict[str, Any], out: Outcome) -> None:
    matched = spec.control_spec.matched_on
    if not matched:
        return
    reported = control_ns.get("balance")
    reported = reported if isinstance(reported, dict) else {}
    for name, tolerance in matched.items():
        value = reported.get(name)
        if isinstance(value, dict):  # {smd: ...} or {value: ...}
            value = value.get("smd", value.get("value"))
        value = _number(value)
        ok = value is not None and abs(value) <= tolerance
        out.balance[name] = {"achieved": value, "tolerance": tolerance, "ok": ok}
        if value is None:
            out.problems.append(f"{_where(spec, f'control.matched_on.{name}')}: the control's result reports no "
                                f"balance for {name!r} (values: balance: {{{name}: ...}})")
        elif not ok:
            out.problems.append(f"{_where(spec, f'control.matched_on.{name}')}: the control is not balanced on "
                                f"{name!r}: {value:.3g} is beyond the tolerance {tolerance:g}")


def smallest_p(draws: int, sided: str) -> float:
    """The smallest rank p that `draws` random draws can give (the real effect counted as one draw)."""
    return min(1.0, (1 if sided == "one" else 2) / (draws + 1))


def _check_rank(spec: ClaimSpec, control_ns: dict[str, Any], out: Outcome, holds: bool | None) -> bool | None:
    rank = spec.control_spec.rank
    p, draws = _number(lookup(control_ns, rank.p)), _number(lookup(control_ns, rank.draws))
    sided_reported = control_ns.get("sided")
    info: dict[str, Any] = {"p": p, "draws": None if draws is None else int(draws), "sided": rank.sided,
                            "alpha": rank.alpha, "field": rank.p}
    out.rank = info
    if p is None or draws is None:
        out.problems.append(f"{_where(spec, 'control.rank')}: the control's result has no {rank.p!r} and "
                            f"{rank.draws!r} (the rank p and the number of draws)")
        info["ok"] = False
        return False if spec.expect == "effect" else holds
    floor = smallest_p(int(draws), rank.sided)
    info["smallest_p"] = floor
    info["ok"] = floor <= rank.alpha and int(draws) >= rank.min_draws
    if sided_reported not in (None, rank.sided, f"{rank.sided}-sided"):
        out.problems.append(f"{_where(spec, 'control.rank.sided')}: the spec says {rank.sided}-sided, the "
                            f"control's result says {sided_reported!r}")
    if floor > rank.alpha:
        out.problems.append(f"{_where(spec, 'control.rank')}: {int(draws)} draws cannot give a {rank.sided}-sided "
                            f"rank p at or below {rank.alpha:g} (the smallest is {floor:.3g}): the test cannot "
                            "pass or fail on it")
    if int(draws) < rank.min_draws:
        out.problems.append(f"{_where(spec, 'control.rank.min_draws')}: {int(draws)} draws, fewer than the "
                            f"{rank.min_draws} this control needs")
    if spec.control_spec.role == "negative" and spec.expect == "effect" and p > rank.alpha and holds:
        out.problems.append(f"{_where(spec, 'control.rank')}: rank p {p:.3g} is above {rank.alpha:g}: the "
                            "control is not beaten, whatever the control assertion says")
        return False
    return holds


# ---- headroom -------------------------------------------------------------------------------

def check_headroom(spec: ClaimSpec, namespace: dict[str, Any], out: Outcome) -> None:
    """A null must have room to fail: its margin around `reference` stays inside the metric's
    `range`, and (with `headroom`) inside the room the baseline rate leaves in each tested direction."""
    margin = spec.power.margin
    if spec.range is not None:
        low, high = spec.range
        ref = spec.reference
        info = {"range": list(spec.range), "reference": ref, "margin": margin,
                "ok": ref - margin > low and ref + margin < high}
        out.headroom.update(metric=info)
        if not info["ok"]:
            out.problems.append(f"{_where(spec, 'power.margin')}: uninformative null: the margin ±{margin:g} around "
                                f"{ref:g} reaches the bound of the range [{low:g}, {high:g}]")
    room = spec.headroom
    if room is None:
        return
    rate = _number(lookup(namespace, room.rate))
    if rate is None:
        out.problems.append(f"{_where(spec, 'headroom.rate')}: the result has no number {room.rate!r}")
        return
    low, high = room.range
    need = margin * room.per_unit
    rooms = {"up": high - rate, "down": rate - low}
    tested = ["up", "down"] if room.sides == "both" else [room.sides]
    short = [side for side in tested if need >= rooms[side]]
    out.headroom.update(rate={"field": room.rate, "value": rate, "range": [low, high], "need": need,
                              "room": {s: rooms[s] for s in tested}, "ok": not short})
    for side in short:
        out.problems.append(
            f"{_where(spec, 'headroom')}: uninformative null: the rate {room.rate} = {rate:.3g} leaves "
            f"{rooms[side]:.3g} of room {side} to {high if side == 'up' else low:g}, and the margin "
            f"({margin:g} x {room.per_unit:g} = {need:.3g}) reaches the bound: the test could not fail that way")


# ---- audits ---------------------------------------------------------------------------------

def check_audit(spec: ClaimSpec, namespace: dict[str, Any], out: Outcome) -> None:
    if spec.audit is None:
        return
    labeller, blind, unique = namespace.get("labeller"), namespace.get("blind"), _number(namespace.get("unique_items"))
    out.audit = {"labeller": labeller, "blind": blind, "unique_items": unique, "min_unique": spec.audit.min_unique}
    where = _where(spec, "audit")
    if not isinstance(labeller, str) or not labeller.strip():
        out.problems.append(f"{where}: the audit's result does not say who or what labelled (values: labeller)")
    if blind is not True:
        out.problems.append(f"{where}: the labels were not made blind to the judge (values: blind is {blind!r}): "
                            "draw the sheet with claims.audit, which keeps the judge's verdicts apart")
    if unique is None or unique < spec.audit.min_unique:
        out.problems.append(f"{where}: {unique if unique is not None else 'no count of'} unique items labelled, "
                            f"fewer than the {spec.audit.min_unique} the audit needs (values: unique_items)")
    out.audit["ok"] = not any(p.startswith(where) for p in out.problems)


# ---- per-item rows --------------------------------------------------------------------------

def check_items(spec: ClaimSpec, states: dict[str, NodeState], out: Outcome) -> None:
    """A headline claim's result and its control's commit the per-item rows they are computed from."""
    for role, state in states.items():
        if role.startswith("baseline"):
            continue
        items = (state.sidecar or {}).get("items") or {}
        out.items[role] = {name: {"path": meta.get("path"), "rows": meta.get("rows")} for name, meta in items.items()}
        if spec.headline and not items:
            out.problems.append(
                f"{_where(spec, 'experiment' if role == 'main' else 'control.experiment')}: the {role} result "
                f"({state.node.label}) commits no per-item rows (ctx.save_items): a reader cannot recompute it")
