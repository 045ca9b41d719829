"""Configs of the attribution study. Each step's config extends the one upstream of it, so that a
claim's spec names only what it changes and each upstream node gets exactly its own fields
(`cfg.upstream(Model)`, as in the detection study)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.hneurons.config import Step


class GameConfig(Step):
    profile: Literal["embedded", "paper", "tiny"] = Field("embedded", description="Model profile.")
    seed: int = Field(42, description="Seed of every choice: splits, noise, orders, projections.")
    n_base: int = Field(256, ge=1, description="Base pool: the examples the base adapter is trained on.")
    n_candidate: int = Field(448, ge=1, description="Candidate pool: examples the base adapter never saw.")
    n_query: int = Field(64, ge=1, description="Query set: clean examples whose mean gradient defines usefulness.")
    n_eval: int = Field(200, ge=1, description="Evaluation set: clean examples of entities trained on nowhere.")
    p_noisy: float = Field(0.2, ge=0, le=1, description="Share of pool examples with another entity's answer.")
    p_off_format: float = Field(0.2, ge=0, le=1, description="Share of pool examples with the right answer "
                                "in another format.")


class FinetuneConfig(GameConfig):
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_layers: int = Field(6, ge=1, description="Adapted decoder layers, counted from the top.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (constant) of the base finetune.")
    epochs: int = Field(2, ge=1, description="Epochs of the base finetune over the base pool.")
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    level: float = Field(0.95, gt=0, lt=1, description="Coverage of every interval.")


class ScoresConfig(FinetuneConfig):
    projection_dim: int = Field(16, ge=0, description="Bergson's per-module random projection (0: none).")
    score_batch_size: int = Field(8, ge=1, description="Examples per Bergson forward/backward.")
    tail_logits: bool = Field(True, description="Compute logits only at the tail positions Bergson's loss "
                              "reads (equal-length batches; identical scores, faster).")


class SelectionConfig(ScoresConfig):
    """What a comparison of selections fixes: the budget, the pool selected from, the runs."""

    k: int = Field(64, ge=1, description="Examples per continuation finetune (the budget).")
    overlap: bool = Field(False, description="Select from the base and candidate pools (True) or from the "
                          "candidate pool only, which the base adapter never saw (False).")
    rank_from: int = Field(0, ge=0, description="top arm: first rank of the window (0: the top k).")
    random_from: int = Field(0, ge=0, description="random arm: draw only from ranks at or after this one.")
    train_seeds: tuple[int, ...] = Field((0,), min_length=1, description="top arm: one continuation per "
                                         "seed (data order); random arm: subset r trains with seed r mod len.")
    n_subsets: int = Field(8, ge=1, description="random arm: random subsets, one continuation each.")
    continuation_lr: float = Field(1e-3, gt=0)
    continuation_epochs: int = Field(3, ge=1)


class ContinuationConfig(SelectionConfig):
    arm: Literal["top", "random"] = Field("top", description="top: the examples at attribution ranks "
                                          "[rank_from, rank_from + k); random: k examples drawn at random "
                                          "from ranks >= random_from, one draw per subset.")

    @model_validator(mode="after")
    def _one_arm(self) -> ContinuationConfig:
        if self.arm == "top" and self.random_from:
            raise ValueError("random_from is for the random arm")
        if self.arm == "random" and self.rank_from:
            raise ValueError("rank_from is for the top arm")
        return self

    def runs(self) -> list[dict[str, int]]:
        """One entry per continuation finetune: its index, training seed and subset draw."""
        if self.arm == "top":
            return [{"run": i, "train_seed": s, "subset": -1} for i, s in enumerate(self.train_seeds)]
        return [{"run": r, "train_seed": self.train_seeds[r % len(self.train_seeds)], "subset": r}
                for r in range(self.n_subsets)]


class ComparisonConfig(SelectionConfig):
    """The top arm (ranks [rank_from, rank_from + k)) against the random arm (k drawn from ranks >=
    random_from, n_subsets times); each arm's node gets only the fields that concern it."""

    def arms(self) -> tuple[dict[str, Any], dict[str, Any]]:
        shared = self.upstream(SelectionConfig)
        default = SelectionConfig.model_fields["n_subsets"].default
        return ({**shared, "arm": "top", "random_from": 0, "n_subsets": default},
                {**shared, "arm": "random", "rank_from": 0})


class SAEConfig(Step):
    """The stand-in SAE node (until the SAE study's node is merged): a TopK SAE on the residual
    stream of the profile's model, trained on the embedded factual questions."""

    profile: Literal["embedded", "paper", "tiny"] = Field("embedded")
    seed: int = Field(42)
    layer: int = Field(11, ge=0, description="Block whose output residual (hook_resid_post) the SAE reads.")
    d_sae: int = Field(1024, ge=1)
    k: int = Field(24, ge=1, description="Active features per token (TopK).")
    steps: int = Field(600, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    max_texts: int | None = Field(None, ge=1, description="Cap on training texts (None: every question).")


class FingerprintConfig(ScoresConfig):
    sae_experiment: str = Field("pipeline.attribution.sae_standin", description="Upstream experiment that "
                                "provides the SAE (the contract is in pipeline/attribution/sae.py).")
    sae_config: dict[str, Any] = Field(default_factory=dict, description="Its config; `profile` is filled "
                                       "from this config when absent.")
    sae_file: str = Field("sae", description="Name of the upstream file with the SAE weights; `<name>_cfg` "
                          "holds its config.")
    sae_layer: int = Field(11, ge=0, description="Block whose output residual the SAE reads (must match the "
                           "SAE's hook).")
    alphas: tuple[float, ...] = Field((1.0, 10.0, 100.0, 1e3, 1e4, 1e5), description="Ridge strengths, chosen "
                                      "by grouped cross-validation inside each training fold.")


class ShuffledConfig(FingerprintConfig):
    n_shuffles: int = Field(20, ge=1, description="Refits on attribution ranks permuted across the pool.")
