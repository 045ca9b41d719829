"""What an experiment returns: named estimates, each with its interval, level and n."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Estimate(BaseModel):
    """One number a claim may cite, with the uncertainty that must travel with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None = Field(description="Point estimate (None for an interval-only quantity).")
    ci: tuple[float, float] | None = Field(default=None, description="Interval (low, high).")
    level: float | None = Field(default=None, description="Coverage of ci, e.g. 0.95.")
    n: int = Field(ge=0, description="Number of units the estimate rests on.")
    method: str = Field(default="", description="How ci was computed, e.g. 'bootstrap-bca'.")
    unit: str = Field(default="", description="What n counts, e.g. 'questions'.")

    @model_validator(mode="after")
    def _consistent(self) -> Estimate:
        if self.ci is not None:
            if self.level is None:
                raise ValueError("an interval needs its level")
            low, high = self.ci
            if any(math.isnan(x) for x in (low, high)) or low > high:
                raise ValueError(f"interval {self.ci} is not ordered or is NaN")
            if self.value is not None and not math.isnan(self.value):
                slack = 1e-9 * max(1.0, abs(self.value))
                if not low - slack <= self.value <= high + slack:
                    raise ValueError(f"value {self.value} lies outside its own interval {self.ci}")
        if self.value is not None and math.isinf(self.value):
            raise ValueError("value is infinite")
        return self


class Result(BaseModel):
    """An experiment's structured output. Small enough to commit; large arrays live in `files`."""

    model_config = ConfigDict(extra="forbid")

    estimates: dict[str, Estimate] = Field(default_factory=dict)
    values: dict[str, Any] = Field(
        default_factory=dict, description="Descriptive data: counts, tables, series for figures."
    )
    files: dict[str, str] = Field(
        default_factory=dict, description="Large outputs in the blob cache: name -> sha256."
    )

    @model_validator(mode="after")
    def _no_clashes(self) -> Result:
        derived = {f"{name}{suffix}" for name in self.estimates for suffix in ("", "_ci", "_n", "_level")}
        clash = sorted(derived & set(self.values))
        if clash:
            raise ValueError(f"values clash with estimate names: {', '.join(clash)}")
        return self

    def namespace(self) -> dict[str, Any]:
        """Flat names for assertions and statements: x, x_ci, x_n, x_level per estimate, plus values."""
        names: dict[str, Any] = dict(self.values)
        for name, est in self.estimates.items():
            names[name] = est.value
            names[f"{name}_ci"] = list(est.ci) if est.ci is not None else None
            names[f"{name}_n"] = est.n
            names[f"{name}_level"] = est.level
        return names
