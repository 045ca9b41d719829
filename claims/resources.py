"""What one task of an experiment needs on a cluster: CPUs, GPUs, memory.

An experiment module declares it (`RESOURCES = {"num_gpus": 1}`, or `resources(config)` when it
depends on the config, e.g. a GPU on the paper profile only); a claim may override it for its own
nodes (`resources:` in the spec, `control.resources:` for the control). Only the Ray executor reads
it; resources never enter a cache key (where a result was computed does not change it).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]?i?b?)\s*$", re.I)


def parse_bytes(value: Any) -> int:
    """16000000000, '16GB' or '15GiB' -> bytes."""
    if isinstance(value, bool):
        raise ValueError("memory is a size in bytes or text such as '16GB', not a boolean")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE.match(str(value))
    if not match or match["unit"].lower() not in _UNITS:
        raise ValueError(f"memory {value!r} is not a size such as 16GB, 512MiB or a number of bytes")
    return int(float(match["n"]) * _UNITS[match["unit"].lower()])


class Resources(BaseModel):
    """One task's needs, as Ray reads them (a task waits until a node of the cluster has them free)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: float = Field(default=1, ge=0, description="CPU cores the task reserves (default 1).")
    num_gpus: float = Field(default=0, ge=0, description="GPUs the task reserves; fractions share one GPU.")
    memory: int | None = Field(default=None, ge=0,
                               description="RAM the task reserves, in bytes or as text ('24GB', '16GiB').")

    @field_validator("memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return None if value is None else parse_bytes(value)

    def over(self, base: Resources) -> Resources:
        """These needs where they were given, `base`'s elsewhere (a claim over its module)."""
        return base.model_copy(update={k: getattr(self, k) for k in self.model_fields_set})

    def widest(self, other: Resources) -> Resources:
        """The larger of two needs per field (two claims asking different things of one node)."""
        memory = [m for m in (self.memory, other.memory) if m is not None]
        return Resources(num_cpus=max(self.num_cpus, other.num_cpus),
                         num_gpus=max(self.num_gpus, other.num_gpus), memory=max(memory) if memory else None)

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            options["memory"] = self.memory
        return options

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU"] + ([f"{self.num_gpus:g} GPU"] if self.num_gpus else [])
        return ", ".join(parts + ([f"{self.memory / 1e9:.3g} GB memory"] if self.memory else []))


def declared(raw: Any, where: str) -> Resources:
    """Validate a module's declaration; the error names the module and the field."""
    from claims.errors import ExperimentError

    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: must be a mapping such as {{'num_cpus': 2, 'num_gpus': 1}}, "
                              f"not {type(raw).__name__}")
    try:
        return Resources.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = "unknown field (use num_cpus, num_gpus, memory)" if err["type"] == "extra_forbidden" \
            else err["msg"].removeprefix("Value error, ")
        raise ExperimentError(f"{where}.{field}: {message}") from None
