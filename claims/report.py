"""Plain-text tables for the terminal and JSON reports for machines."""

from __future__ import annotations

from collections.abc import Sequence

from claims.verify import Outcome


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value)}"
    return f"{value:.3g}"


def fmt_ci(ci: Sequence[float] | None, level: float | None) -> str:
    if not ci:
        return "-"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" + (f" @{level:.0%}" if level else "")


def control_cell(outcome: Outcome) -> str:
    """The control's value (if any) and the verdict words of claims.verdict."""
    control = outcome.control
    shown = fmt(control.get("value")) if control.get("value") is not None else ""
    null = " (null)" if outcome.expect == "null" else ""
    return f"{shown} {outcome.verdict}{null}".strip()


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def verify_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        status = o.status if o.status not in ("blocked", "not_applicable") else f"{o.status}: {o.reason}"
        rows.append([o.id, fmt(o.value), fmt_ci(o.ci, o.level), str(o.n if o.n is not None else "-"),
                     control_cell(o), status])
    return table(rows, ["claim", "value", "CI", "n", "control", "status"])
