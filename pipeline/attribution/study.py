"""What the finetuning, scoring and continuation steps share: the model, the examples and their
token ids, indices by split, and the cached residual stream entering the first adapted layer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.attribution.config import FinetuneConfig
from pipeline.attribution.encoding import Encoded, encode
from pipeline.attribution.forward import Residuals
from pipeline.attribution.lora import LoraSpec


def lora_spec(cfg: FinetuneConfig) -> LoraSpec:
    return LoraSpec(rank=cfg.lora_rank, alpha=cfg.lora_alpha, layers=cfg.lora_layers)


@dataclass
class Study:
    lm: Any
    examples: list[dict[str, Any]]
    encoded: Encoded
    residuals: Residuals
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(cls, ctx: Any, cfg: FinetuneConfig, residuals: Residuals | None = None) -> Study:
        """Load the model and the pool's examples; capture the residual stream unless given."""
        from pipeline.models import load

        examples = ctx.upstream("pool").json("examples")
        lm = load(cfg.profile)
        study = cls(lm, examples, encode(lm.tokenizer, examples), residuals)  # type: ignore[arg-type]
        if residuals is None:
            with study.timed("residual_stream"):
                start = lora_spec(cfg).first_layer(lm.n_layers)
                study.residuals = Residuals.capture(lm, study.encoded, start, cfg.eval_batch_size, ctx.progress)
        return study

    @classmethod
    def from_finetune(cls, ctx: Any, cfg: FinetuneConfig) -> tuple[Study, dict[str, np.ndarray]]:
        """The study with the residual stream and adapter the upstream `finetune` node saved."""
        up = ctx.upstream("finetune")
        return cls.open(ctx, cfg, Residuals.from_arrays(up.arrays("residuals"))), up.arrays("adapter")

    def where(self, *splits: str) -> np.ndarray:
        return np.array([i for i, e in enumerate(self.examples) if e["split"] in splits], dtype=int)

    def entities(self, indices: np.ndarray) -> list[str]:
        return [self.examples[i]["entity"] for i in indices]

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Adds the block's process CPU seconds and wall seconds to `seconds` under name."""
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.seconds[f"{name}_cpu"] = round(self.seconds.get(f"{name}_cpu", 0.0) + time.process_time() - cpu, 2)
            self.seconds[f"{name}_wall"] = round(self.seconds.get(f"{name}_wall", 0.0) + time.perf_counter() - wall, 2)
