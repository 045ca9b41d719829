"""TriviaQA (rc.nocontext) for the paper profile, mapped to QAItem. Needs the HF hub (or a warm cache)."""

from __future__ import annotations

from itertools import islice
from typing import Any

from pipeline.data.items import QAItem

DATASET = ("trivia_qa", "rc.nocontext")
FAMILY = "triviaqa"


def triviaqa_item(record: dict[str, Any]) -> QAItem:
    """One TriviaQA record -> QAItem; aliases merge `aliases` and `normalized_aliases`, answer first."""
    answer = record["answer"]
    value = str(answer["value"]).strip()
    aliases: list[str] = []
    for alias in [*answer.get("aliases", []), *answer.get("normalized_aliases", [])]:
        alias = str(alias).strip()
        if alias and alias != value and alias not in aliases:
            aliases.append(alias)
    return QAItem(
        id=f"{FAMILY}/{record['question_id']}",
        family=FAMILY,
        subject="",  # open-domain questions have no single subject
        question=str(record["question"]).strip(),
        answer=value,
        aliases=tuple(aliases),
        source=f"{DATASET[0]}:{DATASET[1]}",
    )


def load_triviaqa(split: str = "validation", n: int | None = None) -> list[QAItem]:
    """The first `n` (all if None) questions of a TriviaQA split, in the data set's order."""
    import datasets

    ds = datasets.load_dataset(*DATASET, split=split)
    records = ds if n is None else islice(ds, n)
    return [triviaqa_item(r) for r in records]
