"""The detection study's configs: each step's config extends the one upstream of it, so that a
claim's spec names only what it changes and every upstream node gets exactly its own fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def upstream(self, model: type[BaseModel]) -> dict[str, Any]:
        """This config restricted to the fields of an upstream step's config."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k in model.model_fields}


class QuestionsConfig(Step):
    profile: Literal["embedded", "paper", "tiny"] = Field("embedded", description="Model and data profile.")
    max_questions: int | None = Field(None, ge=4, description="Cap on questions (None: all of the set).")
    seed: int = Field(42, description="Seed for every random choice downstream.")


class SampleConfig(QuestionsConfig):
    n_shots: int = Field(4, ge=0, description="Few-shot examples in each prompt (base model).")
    k: int = Field(5, ge=2, description="Sampled answers per question; a label needs all k to agree.")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(8, ge=1)
    batch_size: int = Field(40, ge=1)


class SplitConfig(SampleConfig):
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of subjects held out for test.")
    balance: Literal["family", "pooled"] = Field(
        "family",
        description="Balance classes within each fact family (so that the family cannot predict the "
        "label) or only overall (pooled: the family confound stays in).",
    )


class ActivationsConfig(SplitConfig):
    forward_batch_size: int = Field(16, ge=1)


class ProbeConfig(ActivationsConfig):
    Cs: tuple[float, ...] = Field((0.01, 0.03, 0.1, 0.3, 1.0), description="L1 strengths swept.")
    cv_folds: int = Field(5, ge=2, description="Subject-grouped folds for choosing C on train.")
    level: float = Field(0.95, gt=0, lt=1)


class RandomProbeConfig(ProbeConfig):
    seeds: int = Field(8, ge=1, description="Random neuron sets drawn (one probe each).")
    matched_layers: bool = Field(True, description="Draw as many neurons per layer as the probe kept.")
