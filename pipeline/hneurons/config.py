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
    batch_size: int = Field(40, ge=1, description="Rows per sampling batch (prompts x k).")
    greedy_batch_size: int = Field(32, ge=1, description="Prompts per greedy batch.")


class SplitConfig(SampleConfig):
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of subjects held out for test.")
    balance: Literal["family", "pooled"] = Field(
        "family",
        description="Balance classes within each fact family (so that the family cannot predict the "
        "label) or only overall (pooled: the family confound stays in).",
    )
    split_seeds: tuple[int, ...] = Field((0, 1, 2, 3, 4), min_length=1,
                                         description="One subject-disjoint, balanced split per seed.")


class ActivationsConfig(SampleConfig):
    forward_batch_size: int = Field(16, ge=1)


VARIANTS = ("answer", "greedy", "prompt_end", "question")


class ProbeConfig(SplitConfig, ActivationsConfig):
    variant: Literal["answer", "greedy", "prompt_end", "question"] = Field(
        "answer", description="Where CETT is read: the kept sampled answer, the greedy answer, the last "
        "prompt token (before any answer) or the question's tokens.")
    selection: Literal["l1", "univariate", "dense"] = Field(
        "l1", description="l1: sparse probe (the H-neuron method); univariate: the same number of "
        "neurons ranked one by one on train, then an L2 probe; dense: an L2 probe on every neuron.")
    shuffle_labels: bool = Field(False, description="Permute the training labels within each family "
                                 "(the test labels stay true): a probe should then be at chance.")
    Cs: tuple[float, ...] = Field((0.01, 0.03, 0.1, 0.3, 1.0), description="L1 inverse regularisation swept.")
    l2_Cs: tuple[float, ...] = Field((0.001, 0.01, 0.1, 1.0, 10.0, 100.0),
                                     description="C grid of every L2 probe (univariate, dense, random sets).")
    cv_folds: int = Field(3, ge=2, description="Subject-grouped folds for choosing C on train.")
    n_jobs: int = Field(2, ge=1, description="Processes fitting probes in parallel.")
    level: float = Field(0.95, gt=0, lt=1)


class RandomProbeConfig(ProbeConfig):
    n_sets: int = Field(100, ge=1, description="Random neuron sets drawn per split.")
    activity_bins: int = Field(10, ge=1, description="Within-layer quantile bins of mean CETT on train "
                               "that a random neuron must share with the neuron it stands for.")


class BaselineConfig(ProbeConfig):
    baseline_C: float = Field(1.0, gt=0, description="L2 strength of the baselines' logistic regressions.")
