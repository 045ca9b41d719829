"""The QA item shape shared by every data set, and its canonical JSONL form and hash."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answer and accepted aliases.

    `id` is stable across builds ("capital/france"); `family` groups items that share a question
    template (few-shot examples and counterfactuals are drawn within a family); `source` names the
    package (and version) or data set the fact came from.
    """

    id: str
    family: str
    subject: str
    question: str
    answer: str
    aliases: tuple[str, ...] = ()
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "family": self.family,
            "subject": self.subject,
            "question": self.question,
            "answer": self.answer,
            "aliases": list(self.aliases),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QAItem:
        return cls(**{**data, "aliases": tuple(data.get("aliases", ()))})


def to_jsonl(items: Iterable[QAItem]) -> bytes:
    """Canonical JSONL: one object per line, sorted keys, compact separators, UTF-8, trailing newline."""
    lines = [
        json.dumps(it.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")) for it in items
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def dataset_hash(items: Iterable[QAItem]) -> str:
    """sha256 of the canonical JSONL bytes (order matters)."""
    return hashlib.sha256(to_jsonl(items)).hexdigest()


def save_jsonl(items: Iterable[QAItem], path: str | Path) -> Path:
    """Write canonical JSONL atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(to_jsonl(items))
    os.replace(tmp, path)
    return path


def load_jsonl(path: str | Path) -> list[QAItem]:
    """Read items written by `save_jsonl`."""
    text = Path(path).read_text(encoding="utf-8")
    return [QAItem.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
