"""Few-shot prompts for a base model and counterfactual contexts, both deterministic.

    Q: What is the capital of Japan?
    A: Tokyo

    Q: What is the capital of France?
    A:

Shots come from the item's own family, never the item itself nor an item sharing its answer. They
are the family's items with the smallest sha256(seed, id), so nearly every item in a family sees
the same shots (a stable prefix), and the choice does not depend on the pool's order.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.data.embedded import TEMPLATES, build_embedded
from pipeline.data.items import QAItem
from pipeline.data.matching import answer_forms

DEFAULT_SHOTS = 4


def _rank(seed: int | str, item_id: str) -> str:
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def _disjoint(a: QAItem, b: QAItem) -> bool:
    """True if the two items share no accepted answer form."""
    return not set(answer_forms(a)) & set(answer_forms(b))


def _pool(item: QAItem, pool: Sequence[QAItem] | None) -> list[QAItem]:
    source = build_embedded() if pool is None else pool
    others = [x for x in source if x.family == item.family and x.id != item.id and _disjoint(x, item)]
    if not others:
        raise ValueError(f"no other items of family {item.family!r} to draw from for {item.id}")
    return others


def qa_block(item: QAItem, answer: str | None = None) -> str:
    """One "Q: ...\\nA: ..." block; without an answer it ends at "A:" for the model to continue."""
    return f"Q: {item.question}\nA:" + (f" {answer}" if answer is not None else "")


def few_shot_prompt(
    item: QAItem, n_shots: int = DEFAULT_SHOTS, *, pool: Sequence[QAItem] | None = None, seed: int = 0
) -> str:
    """A base-model prompt: `n_shots` answered examples from the same family, then the item's question.

    `pool` defaults to the embedded QA set; pass the items of another set (e.g. TriviaQA) to use it.
    """
    if n_shots < 0:
        raise ValueError(f"n_shots must be >= 0, got {n_shots}")
    shots = sorted(_pool(item, pool), key=lambda x: _rank(seed, x.id))[:n_shots] if n_shots else []
    return "".join(qa_block(s, s.answer) + "\n\n" for s in shots) + qa_block(item)


def subject_phrase(item: QAItem) -> str:
    """The subject as it reads in the item's question ("the Netherlands"), from the family template."""
    if item.family not in TEMPLATES:
        raise ValueError(f"family {item.family!r} has no statement template")
    head, tail = TEMPLATES[item.family][0].split("{s}")
    if not (item.question.startswith(head) and item.question.endswith(tail)):
        raise ValueError(f"question of {item.id} does not follow its family template: {item.question!r}")
    return item.question[len(head) : len(item.question) - len(tail)]


def statement(item: QAItem, answer: str | None = None) -> str:
    """A declarative sentence of the item's fact, or of `answer` in its place."""
    phrase = subject_phrase(item)
    text = TEMPLATES[item.family][1].format(s=phrase, a=item.answer if answer is None else answer)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Counterfactual:
    """A false fact from the item's family, stated as a context sentence, with its false answer."""

    item: QAItem
    context: str
    false_answer: str
    source_id: str  # the item whose true answer is used as the false one

    def as_item(self) -> QAItem:
        """The question with the false answer as gold (to score whether the model followed the context)."""
        return QAItem(
            id=f"{self.item.id}#cf",
            family=self.item.family,
            subject=self.item.subject,
            question=self.item.question,
            answer=self.false_answer,
            source=self.item.source,
        )


def counterfactual_item(
    item: QAItem, rng_or_seed: random.Random | int = 0, *, pool: Sequence[QAItem] | None = None
) -> Counterfactual:
    """A context stating another item's answer as this item's ("The capital of France is Madrid.").

    With an int seed the choice depends only on (seed, item id); with a `random.Random` it draws from it.
    """
    others = sorted(_pool(item, pool), key=lambda x: x.id)
    rng = rng_or_seed if isinstance(rng_or_seed, random.Random) else random.Random(f"{rng_or_seed}:{item.id}")
    source = others[rng.randrange(len(others))]
    return Counterfactual(
        item=item, context=statement(item, source.answer), false_answer=source.answer, source_id=source.id
    )
