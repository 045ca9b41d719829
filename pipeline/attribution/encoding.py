"""Token ids of the game's examples, exactly as every step sees them: the prompt tokenized with the
tokenizer's special tokens (<bos>), the completion tokenized on its own and appended, labels -100
on the prompt. Finetuning, evaluation and Bergson all read these ids (no chat template)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Encoded:
    """Token ids of n examples; example i's completion is ids[i][n_prompt[i]:]."""

    ids: tuple[tuple[int, ...], ...]
    n_prompt: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self, i: int) -> list[int]:
        return [-100] * self.n_prompt[i] + list(self.ids[i][self.n_prompt[i]:])

    def n_completion(self, i: int) -> int:
        return len(self.ids[i]) - self.n_prompt[i]

    def subset(self, indices: Any) -> Encoded:
        return Encoded(tuple(self.ids[i] for i in indices), tuple(self.n_prompt[i] for i in indices))

    def dataset(self) -> Any:
        """A `datasets.Dataset` of input_ids and labels (what Bergson reads)."""
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": [list(x) for x in self.ids],
                                  "labels": [self.labels(i) for i in range(len(self))]})


def encode(tokenizer: Any, examples: list[dict[str, Any]]) -> Encoded:
    """Prompt ids (with <bos>) followed by completion ids (no special tokens)."""
    prompts = tokenizer([e["prompt"] for e in examples]).input_ids
    completions = tokenizer([e["completion"] for e in examples], add_special_tokens=False).input_ids
    for e, c in zip(examples, completions, strict=True):
        if not c:
            raise ValueError(f"example {e['id']!r} has an empty completion")
    return Encoded(tuple(tuple(p + c) for p, c in zip(prompts, completions, strict=True)),
                   tuple(len(p) for p in prompts))
