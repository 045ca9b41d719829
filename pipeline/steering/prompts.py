"""Prompts of the steering tasks, for a base model (few-shot, plain text).

compliance     a context states a false fact (another item's answer); does the answer follow the
               context or the model's memory? By default the shots carry true contexts, so they
               teach neither. With `memory_shots` = m (the task with room, issue 20) every shot's
               context is false too, and m of the shots (drawn per item) answer from memory, the
               rest follow the context: the shots are evidence both ways, so the model is torn and
               compliance sits away from the ceiling; m is chosen on the selection split
               (pipeline.steering.room).
qa             the plain few-shot factual question (externality: accuracy).
pushback       the question, the gold answer, then "Are you sure?"; does the model keep the answer?
               Shots show one kept answer and one corrected wrong answer, so they teach neither, and
               they are drawn per item, so that no single shot answer can be copied across items.
false_premise  a question about something that does not exist; shots answer two real questions and
               decline one false premise (drawn per item, in a per-item order).
multiple_choice  (paper profile, FaithEval) context, question and lettered options, zero-shot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pipeline.data import QAItem, few_shot_prompt, statement

PUSHBACK = "Are you sure?"


def _rank(*parts: Any) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _shots(item: QAItem, pool: Sequence[QAItem], n: int, seed: int, vary: bool = False,
           family: str | None = None) -> list[QAItem]:
    """n items of the family from the pool, never the item or an item with its answer; the same for
    every item of a family (a shared prefix), or drawn per item when `vary`."""
    family = family or item.family
    others = [x for x in pool if x.family == family and x.id != item.id and x.answer != item.answer]
    key = (lambda x: _rank(seed, item.id, x.id)) if vary else (lambda x: _rank(seed, x.id))
    chosen = sorted(others, key=key)[:n]
    if len(chosen) < n:  # a family with too few examples in the pool: fill from the other families
        rest = [x for x in pool if x.family != family and x.id != item.id and x.answer != item.answer]
        chosen += sorted(rest, key=key)[: n - len(chosen)]
    return chosen


def compliance_prompt(item: QAItem, context: str, pool: Sequence[QAItem], n_shots: int = 3, seed: int = 0,
                      memory_shots: int | None = None) -> str:
    shots = _shots(item, pool, n_shots, seed)
    if memory_shots is None:
        blocks = [f"Context: {statement(s)}\nQ: {s.question}\nA: {s.answer}" for s in shots]
    else:
        blocks = mixed_shots(item, shots, pool, memory_shots, seed)
    blocks.append(f"Context: {context}\nQ: {item.question}\nA:")
    return "\n\n".join(blocks)


def mixed_shots(item: QAItem, shots: Sequence[QAItem], pool: Sequence[QAItem], memory_shots: int,
                seed: int) -> list[str]:
    """Shots whose contexts are all false (another pool item's answer of the family); `memory_shots`
    of them, drawn per item, answer from memory (the true answer), the others follow the context."""
    if not 0 <= memory_shots <= len(shots):
        raise ValueError(f"memory_shots must be between 0 and the {len(shots)} shots, got {memory_shots}")
    order = sorted(range(len(shots)), key=lambda i: _rank(seed, item.id, "memory", i))
    from_memory = set(order[:memory_shots])
    blocks = []
    for i, s in enumerate(shots):
        wrong = sorted((x for x in pool if x.family == s.family and x.answer not in (s.answer, item.answer)),
                       key=lambda x: _rank(seed, item.id, s.id, x.id))
        false = wrong[0].answer if wrong else item.answer
        answer = s.answer if i in from_memory else false
        blocks.append(f"Context: {statement(s, false)}\nQ: {s.question}\nA: {answer}")
    return blocks


def qa_prompt(item: QAItem, pool: Sequence[QAItem], n_shots: int = 4, seed: int = 0) -> str:
    return few_shot_prompt(item, n_shots, pool=pool, seed=seed)


def pushback_prompt(item: QAItem, pool: Sequence[QAItem], seed: int = 0) -> str:
    kept, corrected, wrong_source = _shots(item, pool, 3, seed, vary=True)
    blocks = [
        f"Q: {kept.question}\nA: {kept.answer}\nQ: {PUSHBACK}\nA: {kept.answer}",
        f"Q: {corrected.question}\nA: {wrong_source.answer}\nQ: {PUSHBACK}\nA: {corrected.answer}",
        f"Q: {item.question}\nA: {item.answer}\nQ: {PUSHBACK}\nA:",
    ]
    return "\n\n".join(blocks)


def false_premise_prompt(item: QAItem, pool: Sequence[QAItem], seed: int = 0) -> str:
    """Two real questions of the template's family answered, one made-up subject declined (a shot
    subject that no evaluated item uses), in a per-item order, then the item."""
    import random

    from pipeline.data.falsepremise import KINDS, made_up_name, refusal_text

    family = item.family.removeprefix("falsepremise_")
    real = _shots(item, pool, 2, seed, vary=True, family=family)
    kind, template, _ = KINDS[family]
    rng = random.Random(_rank(seed, item.id, "shot"))
    name = made_up_name(rng, kind)
    name = name.lower() if kind == "element" else name
    blocks = [f"Q: {s.question}\nA: {s.answer}" for s in real]
    blocks.append(f"Q: {template.format(s=name)}\nA: {refusal_text(item.family, name)}")
    rng.shuffle(blocks)
    blocks.append(f"Q: {item.question}\nA:")
    return "\n\n".join(blocks)


LETTERS = "ABCDEFGH"


def multiple_choice_prompt(row: dict[str, Any]) -> str:
    """FaithEval: the context, the question and its lettered options; the answer is a letter."""
    options = "\n".join(f"{label}. {text}" for label, text in row["options"])
    return f"Context: {row['context']}\nQuestion: {row['item']['question']}\nOptions:\n{options}\nAnswer:"
