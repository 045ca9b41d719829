"""What a chart reads of a claim: fields of its results, its axis, its assertions' thresholds,
and the range a null claim is judged against. Every number a chart draws comes through here."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from claims.errors import BuildError


class FigureDataError(BuildError):
    """A figure's data is missing or malformed in the result; `field` is the spec field to blame."""

    def __init__(self, message: str, field: str = "figure"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    @property
    def has_ci(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Line:
    """A reference line: the constant an assertion compares with, or one the spec names."""

    value: float
    label: str
    axis: str | None = None  # None: the panel's value axis


def words(field: str) -> str:
    """A field as words for a label of last resort: control.gain_over_family -> gain over family."""
    return field.removeprefix("control.").replace("_", " ").replace(".", " ")


def d3_to_python(fmt: str) -> str:
    """A d3-format spec as Python's format spec (they agree but for d3's '~', trim zeros)."""
    return fmt.replace("~", "")


def number(value: float, fmt: str | None) -> str:
    """A number as the axis shows it (d3's '~' trims insignificant zeros, as here)."""
    if fmt:
        try:
            text = format(value, d3_to_python(fmt))
        except ValueError:
            return f"{value:.3g}"
        if "~" in fmt and "." in text:
            text = re.sub(r"\.?0+(?=%?$)", "", text)
        return text
    return f"{value:.3g}"


def panel_axis(spec: dict[str, Any] | None, default_label: str, default_format: str | None = None) -> tuple[str, str | None]:
    """(title, d3 format) of an axis the panel names ({label, unit, format}), else the defaults."""
    if not spec:
        return default_label, default_format
    title = f"{spec['label']} ({spec['unit']})" if spec.get("unit") else spec["label"]
    return title, spec.get("format") or default_format


class ClaimData:
    """A claim as its charts see it: outcome, spec, fresh results, and the claim's number format."""

    def __init__(self, record: Any):
        self.record, self.outcome, self.spec = record, record.outcome, record.spec
        self.main, self.control = record.result("main"), record.result("control")
        self.where = f"claim {self.outcome.id}"
        self._ns = {"main": self.main.namespace() if self.main else None,
                    "control": self.control.namespace() if self.control else None}

    # ---- fields ---------------------------------------------------------------------------
    def _split(self, path: str) -> tuple[str, Any, list[str]]:
        role, rest = ("control", path.removeprefix("control.")) if path.startswith("control.") else ("main", path)
        result = self.control if role == "control" else self.main
        if result is None:
            raise FigureDataError(f"{self.where}: {path}: the claim has no fresh {role} result")
        return role, result, rest.split(".")

    def field(self, path: str) -> Any:
        """The value at `path` (control.x for the control's result, a.b for key b inside value a)."""
        role, _, parts = self._split(path)
        value: Any = self._ns[role]
        for i, part in enumerate(parts):
            if not isinstance(value, dict) or part not in value:
                known = sorted(value)[:12] if isinstance(value, dict) else []
                shown = ".".join(parts[: i + 1])
                raise FigureDataError(f"{self.where}: the {role} result has no {shown!r}"
                                      + (f" (it has: {', '.join(known)})" if known and i == 0 else ""))
            value = value[part]
        return value

    def has(self, path: str) -> bool:
        try:
            self.field(path)
        except FigureDataError:
            return False
        return True

    def interval(self, path: str) -> Interval:
        """An estimate with its interval (or a bare number, without one)."""
        role, result, parts = self._split(path)
        name = ".".join(parts)
        est = result.estimates.get(name)
        if est is not None:
            low, high = est.ci if est.ci else (None, None)
            return Interval(est.value, low, high)
        value = self.field(path)
        if not is_number(value):
            raise FigureDataError(f"{self.where}: {path} is not a number (it is {type(value).__name__})")
        ci = self._ns[role].get(f"{name}_ci") if len(parts) == 1 else None
        return Interval(float(value), *(ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)))

    def numbers(self, path: str) -> list[float | None]:
        """A list of numbers (None kept: it marks a draw that broke the model)."""
        values = self.field(path)
        if not isinstance(values, list) or not values:
            raise FigureDataError(f"{self.where}: {path} is not a non-empty list of numbers")
        out: list[float | None] = []
        for i, v in enumerate(values):
            if v is not None and not is_number(v):
                raise FigureDataError(f"{self.where}: {path}[{i}] is {v!r}, not a number or None")
            out.append(None if v is None or math.isnan(float(v)) else float(v))
        return out

    # ---- what the assertions test ----------------------------------------------------------
    def assertions(self) -> list[str]:
        control = self.spec.control_spec
        return [a for a in (self.spec.assert_, control.assert_ if control else None) if a]

    def tested(self, path: str) -> bool:
        """Whether an assertion reads this field (or its interval)."""
        from claims.expr import referenced

        names = {n for a in self.assertions() for n in referenced(a)}
        return path in names or f"{path}_ci" in names

    def thresholds(self, paths: list[str], fmt: str | None) -> list[Line]:
        """The constants the assertions compare the drawn fields with, as reference lines."""
        from claims.expr import thresholds

        lines: list[Line] = []
        for assertion in self.assertions():
            for name, constant, under_abs in thresholds(assertion):
                base = name.removesuffix("_ci")
                if base not in paths:
                    continue
                for value in ((-constant, constant) if under_abs and constant else (constant,)):
                    line = Line(value, f"threshold {number(value, fmt)}")
                    if line not in lines:
                        lines.append(line)
        return lines

    def null_range(self, draws: list[float] | None = None) -> tuple[float, float, str] | None:
        """For a null claim, the range it is judged against: the control's draws or interval, else
        the equivalence margin of its power. None for an effect claim."""
        if self.outcome.expect != "null":
            return None
        if draws:
            return min(draws), max(draws), "control range"
        ci = (self.outcome.control or {}).get("ci")
        if ci:
            return float(ci[0]), float(ci[1]), "control range"
        if self.spec.power is not None:
            m = float(self.spec.power.margin)
            return -m, m, f"equivalence margin ±{number(m, None)}"
        return None

    # ---- labels ------------------------------------------------------------------------------
    def axis(self, override: Any, default_label: str, path: str | None = None) -> tuple[str, str | None]:
        """(title, d3 format) of an axis: the panel's, else the claim's (for its metric), else a default."""
        metric = path in (None, self.spec.metric, f"control.{self.spec.metric}")
        own = override or (self.spec.axis.model_dump() if metric and self.spec.axis else None)
        return panel_axis(own, default_label, tick_format(self.record.value_format) if metric else None)

    def render_caption(self) -> str | None:
        """The spec's caption with its {fields} filled in from the results."""
        from claims.numbers import render_statement

        if not self.spec.caption or self.main is None:
            return None
        namespace = dict(self._ns["main"] or {})
        if self._ns["control"] is not None:
            namespace["control"] = self._ns["control"]
        namespace.setdefault("level", self.outcome.level)
        return render_statement(self.spec.caption, namespace, self.where)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def tick_format(value_format: str) -> str | None:
    """Tick labels for a metric the statement formats as `value_format`: percentages stay
    percentages (trailing zeros trimmed, so that close ticks do not read alike)."""
    if value_format.endswith("%"):
        return ".1~%"
    return None
