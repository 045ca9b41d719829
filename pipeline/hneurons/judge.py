"""The automatic judge of a sampled answer, and the labelling rule built on it.

Each answer (the generation's first line) is one of:
  correct  it equals, or starts at a word boundary with, the gold answer or an alias
           (pipeline.data.matches);
  format   a format failure, not a claim about the world: empty, an echo of the question's
           subject ("Sc" for "Which element has the symbol Sc?"), or off-format (a question, a
           new "Q:"/"A:" turn, more than MAX_WORDS words, no letter or digit);
  wrong    any other answer: a fact the model states that is not the gold one.

A question is labelled from its k samples: faithful when all are correct, hallucinated when all
are wrong, format_failure when none is correct and at least one is a format failure (excluded
from both classes and counted), and left out (mixed) when some are correct and some are not.
The rubric a human applies to check this judge is pipeline/data/audits/RUBRIC.md.
"""

from __future__ import annotations

from typing import Any

from pipeline.data import first_line, matches, normalize

OUTCOMES = ("correct", "wrong", "format")
LABELS = ("faithful", "hallucinated", "format_failure")
MAX_WORDS = 8


def subject_forms(item: Any) -> set[str]:
    """Normalised forms of what the question is about (its subject, as named in the question)."""
    from pipeline.data.prompts import subject_phrase

    forms = {normalize(item.subject)}
    try:
        forms.add(normalize(subject_phrase(item)))
    except ValueError:  # a data set without templates (TriviaQA)
        pass
    return {f for f in forms if f}


def judge(text: str, item: Any) -> tuple[str, str]:
    """(outcome, reason) of one generation for one QAItem; reason is empty for correct and wrong."""
    if matches(text, item):
        return "correct", ""
    line = first_line(text)
    norm = normalize(line)
    if not norm:
        return "format", "empty"
    if norm in subject_forms(item):
        return "format", "echoes the subject"
    if "?" in line or "Q:" in line or "A:" in line or len(line.split()) > MAX_WORDS:
        return "format", "off-format"
    return "wrong", ""


def label_of(outcomes: list[str]) -> str | None:
    """faithful | hallucinated | format_failure | None (mixed: left out)."""
    if all(o == "correct" for o in outcomes):
        return "faithful"
    if any(o == "correct" for o in outcomes):
        return None
    if any(o == "format" for o in outcomes):
        return "format_failure"
    return "hallucinated"
