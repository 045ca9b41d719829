"""The control of the seed's step 8: the fingerprint's top arm against random subsets matched to
its composition and against the trivial filters at the same k, every arm drawn from the reported
families' candidates (pipeline/attribution/fingerprint_arm.py), compared exactly as
pipeline/attribution/comparison.py compares the attribution arms (same estimates, rank p, balance
and power)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from claims import Result
from pipeline.attribution import comparison
from pipeline.attribution.config import ComparisonConfig


class Config(ComparisonConfig):
    fingerprint: dict[str, Any] = Field(default_factory=dict, description="Config of the fingerprint node whose "
                                        "predictions rank the candidates (each arm's `fingerprint`).")

    def arms(self) -> dict[str, dict[str, Any]]:
        return {name: {**config, "fingerprint": self.fingerprint} for name, config in super().arms().items()}

    def comparison_config(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(mode="json").items() if k != "fingerprint"}


def requires(config: dict[str, Any]) -> dict[str, Any]:
    return {name: ("pipeline.attribution.fingerprint_arm", arm) for name, arm in Config(**config).arms().items()}


def recompute(items: dict[str, list[dict[str, Any]]], config: dict[str, Any]) -> dict[str, Any]:
    return comparison.recompute(items, Config(**config).comparison_config())


def run(config: dict[str, Any], ctx: Any) -> Result:
    return comparison.run(Config(**config).comparison_config(), ctx)
