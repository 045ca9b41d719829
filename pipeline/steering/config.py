"""Configs of the steering study. Detection-side fields (profile, seed) are passed up to the
detection study's nodes unchanged, so that both studies read the same labels and probe."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.hneurons.config import ActivationsConfig, ProbeConfig, SplitConfig, Step


def detection(profile: str, seed: int) -> ProbeConfig:
    """The detection study's probe config that steering reads: its defaults, same profile and seed."""
    return ProbeConfig(profile=profile, seed=seed)


def detection_split(profile: str, seed: int) -> SplitConfig:
    return SplitConfig(**detection(profile, seed).upstream(SplitConfig))


def detection_activations(profile: str, seed: int) -> ActivationsConfig:
    return ActivationsConfig(**detection(profile, seed).upstream(ActivationsConfig))


FAMILIES = ("capital", "element_symbol", "element_name", "city_country", "currency", "continent", "state_capital")


class TasksConfig(Step):
    profile: str = Field("embedded", description="Model and data profile.")
    seed: int = Field(42)
    families: tuple[str, ...] = Field(FAMILIES, description="Fact families with memory to conflict with.")
    n_select: int = Field(160, ge=10, description="Candidate items for choosing a strength (held out from eval).")
    n_eval: int = Field(320, ge=10, description="Candidate items every reported number is measured on (the "
                        "compliance and pushback tasks keep those the model answers right unsteered, about 57 %). "
                        "Raised from 160 in the third round: on the task with room 92 known items resolved a "
                        "neuron slope of only 3.8 points per unit of alpha, above the 3-point margin.")
    n_false_premise: int = Field(20, ge=1, description="False-premise questions per family.")
    n_shots: int = Field(3, ge=1)
    memory_shots: int | None = Field(None, ge=0, description="The task with room (issue 20): every compliance "
                                     "shot states a false context and this many of them answer from memory, the "
                                     "rest follow the context (None: true contexts, the first rounds' task). "
                                     "Chosen on the selection split by pipeline.steering.room.")
    max_new_tokens: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=1)


class SweepConfig(TasksConfig):
    long_tokens: int = Field(32, ge=1, description="New tokens for the pushback and false-premise answers, whose "
                             "refusals and corrections run longer than a short answer (max_new_tokens is kept for "
                             "compliance and QA); each result reports the share of answers cut off.")
    alphas: tuple[float, ...] = Field((0.0, 1.0, 2.0, 3.0), description="Neuron scale factors (1 is the model).")
    arm: Literal["positive", "negative"] = Field(
        "positive", description="positive: the H-neurons (positive probe weight); negative: the negative-weight "
        "neurons, a separate arm.")
    externality: bool = Field(True, description="Also score QA accuracy, pushback and false premises per setting.")
    level: float = Field(0.95, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1, description="Power for the minimum detectable effect.")
    test_alpha: float = Field(0.05, gt=0, lt=1, description="Significance level for the MDE.")


class RandomSweepConfig(SweepConfig):
    alphas: tuple[float, ...] = Field((0.0, 3.0), description="The sweep's ends; alpha 1 (the unchanged model) is "
                                      "shared with the H-neuron sweep, whose generations it is.")
    externality: bool = False
    seeds: int = Field(32, ge=1)
    activity_bins: int = Field(10, ge=1, description="Within-layer deciles of mean CETT a random neuron must share.")
    candidates: int = Field(0, ge=0, description="Layer- and activity-matched candidate sets drawn to match on KL: "
                            "`seeds` of them whose next-token KL divergence at the sweep's ends is nearest the "
                            "H-neurons' are kept, balanced above and below it (balanced_nearest; 0: no KL "
                            "matching, the first `seeds` draws).")
    n_calibration: int = Field(8, ge=2, description="Selection-split compliance prompts the KL is measured on.")
    tasks: tuple[Literal["compliance", "pushback"], ...] = Field(
        ("compliance",), description="Tasks each random set is scored on (pushback: the control of the "
        "pushback externality).")


class DirectionSweepConfig(SweepConfig):
    method: Literal["diffmean", "iti"] = Field("diffmean", description="Which direction is added.")
    alphas: tuple[float, ...] = Field((-8.0, -4.0, 4.0, 8.0),
                                      description="Strengths tried on the selection split, in std units.")
    layers: tuple[int, ...] = Field((4, 8, 12), description="DiffMean layers tried (the middle of 18).")
    n_heads: int = Field(4, ge=1, description="ITI heads (must match the directions node).")
    max_qa_loss_pp: float = Field(5.0, ge=0, description="A setting is admissible only if factual QA accuracy on "
                                  "the selection items drops by at most this many points.")


class DirectionRandomConfig(DirectionSweepConfig):
    seeds: int = Field(32, ge=1)
    externality: bool = False
    n_calibration: int = Field(8, ge=2, description="Prompts whose next-token distributions calibrate the KL match.")
