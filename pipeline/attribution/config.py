"""Configs of the attribution study. Each step's config extends the one upstream of it, so that a
claim's spec names only what it changes and each upstream node gets exactly its own fields
(`cfg.upstream(Model)`, as in the detection study)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

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
    n_select: int = Field(100, ge=0, description="Selection set: clean examples of entities trained on nowhere, "
                          "on which the reported reading of the ranking is chosen before any comparison.")


class FinetuneConfig(GameConfig):
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_layers: int = Field(6, ge=1, description="Adapted decoder layers, counted from the top.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (constant) of the base finetune.")
    epochs: int = Field(2, ge=1, description="Epochs of the base finetune over the base pool.")
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    level: float = Field(0.95, gt=0, lt=1, description="Coverage of every interval.")


READINGS = ("mean-p32", "nearest-p32", "mean-p32-query", "nearest-p32-query", "mean-p16")
Filter = Literal["format", "shortest", "longest", "lowest_loss", "format_loss", "format_base_loss"]
FILTERS = get_args(Filter)
Arm = Literal["top", "random", Filter]


def parse_reading(name: str) -> tuple[str, int, str]:
    """A reading's name -> (score mode, projection dim, preconditioning): "nearest-p32-query" ->
    ("nearest", 32, "query"); "mean-p0" scores the unprojected gradients."""
    parts = name.split("-")
    if len(parts) not in (2, 3) or parts[0] not in ("mean", "nearest") or not parts[1].startswith("p") \
            or not parts[1][1:].isdigit() or (len(parts) == 3 and parts[2] != "query"):
        raise ValueError(f"reading {name!r}: write <mean|nearest>-p<projection dim>[-query], e.g. mean-p32-query")
    return parts[0], int(parts[1][1:]), parts[2] if len(parts) == 3 else "none"


class ScoresConfig(FinetuneConfig):
    readings: tuple[str, ...] = Field(READINGS, min_length=1, description="Readings of the ranking Bergson "
                                      "scores (all from one gradient pass per projection): score mode mean (cosine "
                                      "with the normalised mean unit query gradient) or nearest (the largest "
                                      "cosine with any query), projection p<dim> per module, and -query for "
                                      "preconditioning both sides with the query gradients' second moment "
                                      "(H^-1/2). The first is the one `values.scores` holds.")
    score_batch_size: int = Field(8, ge=1, description="Examples per Bergson forward/backward.")
    tail_logits: bool = Field(True, description="Compute logits only at the tail positions Bergson's loss "
                              "reads (equal-length batches; identical scores, faster).")
    cached_lower: bool = Field(True, description="Bergson's forward starts from the cached residual stream "
                               "entering the first adapted layer (the layers below carry no adapter); the same "
                               "scores up to float rounding, faster. Needs tail_logits.")

    @field_validator("readings")
    @classmethod
    def _readings(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            parse_reading(name)
        if len(set(value)) != len(value):
            raise ValueError("a reading is listed twice")
        return value


class ReadingsConfig(ScoresConfig):
    """Which reading the comparisons report, chosen before them on the selection split: each
    reading's top select_k candidates finetune the shipped model (the base finetune's schedule) and
    the reading with the highest success on the selection split is chosen."""

    select_k: int = Field(128, ge=1, description="Examples per reading's finetune (the headline's budget: half "
                          "the 260 clean candidates, so matched random draws can differ from the top subset).")
    parallel_adapters: int = Field(4, ge=1, description="Finetunes trained together in one batched pass, each "
                                   "batch row with its own adapter (pipeline/attribution/batched.py): the same "
                                   "adapters as one at a time up to float rounding, so it enters the key.")


class SelectionConfig(ReadingsConfig):
    """What a comparison of selections fixes: the budget, the pool selected from, where the
    finetunes start, the reading of the ranking, the runs."""

    start: Literal["adapter", "base"] = Field("adapter", description="adapter: continue the base adapter "
                                              "(continuation_lr, continuation_epochs); base: a fresh adapter on "
                                              "the shipped model (the base finetune's lr and epochs), the seed's "
                                              "design.")
    reading: str = Field("chosen", description="The ranking's reading: `chosen` (the readings node's choice on "
                         "the selection split) or a reading's name.")
    k: int = Field(64, ge=1, description="Examples per finetune (the budget).")
    overlap: bool = Field(False, description="Select from the base and candidate pools (True) or from the "
                          "candidate pool only, which the base adapter never saw (False).")
    rank_from: int = Field(0, ge=0, description="First rank of the top arm's window (0: the top k); the random "
                           "arm is matched to that window's composition.")
    random_from: int = Field(0, ge=0, description="random arm: draw only from ranks at or after this one.")
    train_seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1, description="top and filter arms: one finetune "
                                         "per seed (data order); random arm: subset r trains with seed r mod len.")
    n_subsets: int = Field(32, ge=1, description="random arm: random subsets, one finetune each.")
    matched: bool = Field(True, description="random arm: draw within strata (variant x family x length bin) "
                          "so that every subset has the top window's composition in each stratum.")
    length_bins: int = Field(4, ge=1, description="Quantile bins of token length over the selectable pool "
                             "(strata of the matched draw).")
    loss_pool: int = Field(0, ge=0, description="random arm, matched: 0 draws within strata (variant x family "
                           "x length bin), as many from each as the top window holds; n > 0 serves each top "
                           "example with a uniform pick among the n free examples of its (variant, family) "
                           "stratum nearest to it in the base adapter's loss and token length (each divided by "
                           "its standard deviation over the selectable pool), so that the draws also match the "
                           "loss (pipeline/attribution/subsets.py, nearest_draw).")
    continuation_lr: float = Field(1e-3, gt=0)
    continuation_epochs: int = Field(3, ge=1)

    @field_validator("reading")
    @classmethod
    def _reading(cls, value: str) -> str:
        if value != "chosen":
            parse_reading(value)
        return value

    @model_validator(mode="after")
    def _reading_scored(self) -> SelectionConfig:
        if self.reading != "chosen" and self.reading not in self.readings:
            raise ValueError(f"reading {self.reading!r} is not among the scored readings {list(self.readings)}")
        return self


#: What each arm ignores, reset to its default so that equal arms get equal configs (one node).
_RANDOM_ONLY = ("random_from", "n_subsets", "matched", "length_bins", "loss_pool")


class ArmConfig(SelectionConfig):
    arm: Arm = Field("top", description="top: the examples at ranks [rank_from, rank_from + k); random: k "
                     "examples drawn from ranks >= random_from, one draw per subset (matched: within strata, to "
                     "the top window's composition); format, shortest, longest, lowest_loss, format_loss, "
                     "format_base_loss: trivial filters at the same k (pipeline/attribution/subsets.py).")

    @model_validator(mode="after")
    def _one_arm(self) -> ArmConfig:
        if self.arm != "random" and self.random_from:
            raise ValueError("random_from is for the random arm")
        if self.arm not in ("top", "random") and self.rank_from:
            raise ValueError("rank_from is for the top arm (and the random arm matched to it)")
        return self

    def runs(self) -> list[dict[str, int]]:
        """One entry per finetune: its index, training seed and subset draw."""
        if self.arm != "random":
            return [{"run": i, "train_seed": s, "subset": -1} for i, s in enumerate(self.train_seeds)]
        return [{"run": r, "train_seed": self.train_seeds[r % len(self.train_seeds)], "subset": r}
                for r in range(self.n_subsets)]

    def schedule(self) -> tuple[float, int]:
        """(learning rate, epochs) of this arm's finetunes."""
        return (self.lr, self.epochs) if self.start == "base" else (self.continuation_lr, self.continuation_epochs)


class ComparisonConfig(SelectionConfig):
    """The top arm (ranks [rank_from, rank_from + k)) against the random arm (k drawn from ranks >=
    random_from, n_subsets times, matched to the top window) and against trivial filters at the same
    k; each arm's node gets only the fields that concern it."""

    filters: tuple[Filter, ...] = Field(
        (), description="Trivial filters scored at the same k as baselines (each an arm of its own).")

    def arms(self) -> dict[str, dict[str, Any]]:
        shared = self.upstream(SelectionConfig)
        fixed = {name: SelectionConfig.model_fields[name].default for name in _RANDOM_ONLY}
        out = {"top": {**shared, **fixed, "arm": "top"}, "random": {**shared, "arm": "random"}}
        for name in self.filters:
            out[name] = {**shared, **fixed, "arm": name, "rank_from": 0}
        return out


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


class FingerprintConfig(ReadingsConfig):
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
    sae_layers: tuple[int, ...] = Field((), description="Candidate layers among the SAE study's dictionaries "
                                        "(files sae_L<layer> of pipeline.saefeatures.saes); the fingerprint's "
                                        "layer is chosen among them on the selection families. Empty: the one "
                                        "SAE in sae_file, at sae_layer.")
    wide_sae_config: dict[str, Any] | None = Field(None, description="A second set of the SAE study's "
                                                   "dictionaries (pipeline.saefeatures.saes with this config, "
                                                   "e.g. its second width): every dictionary it holds joins "
                                                   "the candidates, named <layer>w<d_sae>.")
    reading: str = Field("first", description="The reading of the attribution ranking the fingerprint "
                         "predicts: first (the scores node's first reading, values.scores), chosen (the "
                         "readings node's choice, the one the selection comparisons rank by) or a reading's "
                         "name.")
    n_select_families: int = Field(0, ge=0, description="Families drawn (seeded) to choose the layer on; every "
                                   "estimate is reported on the other families only. 0: every family is "
                                   "reported, and only one SAE may be given.")

    @model_validator(mode="after")
    def _one_layer_without_selection(self) -> FingerprintConfig:
        if (len(self.sae_layers) > 1 or self.wide_sae_config is not None) and self.n_select_families < 2:
            raise ValueError("several candidate dictionaries need n_select_families >= 2 to choose among them on "
                             "held-out families (each set-aside family is predicted from the others)")
        if self.wide_sae_config is not None and not self.sae_layers:
            raise ValueError("wide_sae_config adds to the SAE study's dictionaries: it needs sae_layers")
        if self.reading not in ("first", "chosen"):
            parse_reading(self.reading)
            if self.reading not in self.readings:
                raise ValueError(f"reading {self.reading!r} is not among the scored readings {list(self.readings)}")
        return self


class ShuffledConfig(FingerprintConfig):
    n_shuffles: int = Field(20, ge=1, description="Refits on attribution ranks permuted within strata.")
    length_bins: int = Field(5, ge=1, description="The shuffles permute ranks within strata of format variant "
                             "and example-length quantile (this many bins), the two covariates besides the "
                             "fingerprint that predict the rank; 1 bin: within variant only.")
