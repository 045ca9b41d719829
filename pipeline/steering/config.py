"""Configs of the steering study. Detection-side fields (profile, seed, sampling) are passed up to
the detection study's nodes unchanged, so that both studies read the same labels and probe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.hneurons.config import ProbeConfig, Step


def detection(profile: str, seed: int) -> ProbeConfig:
    """The detection study's probe config that steering reads: its defaults, same profile and seed."""
    return ProbeConfig(profile=profile, seed=seed)


class TasksConfig(Step):
    profile: str = Field("embedded", description="Model and data profile.")
    seed: int = Field(42)
    families: tuple[str, ...] = Field(("capital", "element_symbol", "element_name"),
                                      description="Fact families with memory to conflict with.")
    n_select: int = Field(60, ge=10, description="Items for choosing a strength (held out from eval).")
    n_eval: int = Field(150, ge=10, description="Items every reported number is measured on.")
    n_shots: int = Field(3, ge=1)
    max_new_tokens: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=1)


class SweepConfig(TasksConfig):
    alphas: tuple[float, ...] = Field((0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), description="Neuron scale factors.")
    externality: bool = Field(True, description="Also score QA accuracy and pushback flips per setting.")
    level: float = Field(0.95, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1, description="Power for the minimum detectable effect.")
    test_alpha: float = Field(0.05, gt=0, lt=1, description="Significance level for the MDE.")


class RandomSweepConfig(SweepConfig):
    alphas: tuple[float, ...] = Field((0.0, 1.0, 2.0, 3.0), description="Fewer points than the main sweep.")
    externality: bool = False
    seeds: int = Field(8, ge=1)


class DirectionSweepConfig(SweepConfig):
    method: Literal["diffmean", "iti"] = Field("diffmean", description="Which direction is added.")
    alphas: tuple[float, ...] = Field((-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0),
                                      description="Strengths tried on the selection split, in std units.")
    n_heads: int = Field(4, ge=1, description="ITI heads (must match the directions node).")
    min_attempt_ratio: float = Field(0.9, gt=0, le=1, description="A strength is admissible only if the "
                                     "answer-attempt rate stays at least this share of the unsteered rate.")
