"""Answer normalisation and matching of a generation against an item's answer and aliases.

normalize: NFKD + drop combining marks (accents), casefold, delete apostrophes and periods
("Sana'a" -> "sanaa", "D.C." -> "dc"), turn other punctuation and symbols into spaces
("Port-au-Prince" -> "port au prince"), collapse whitespace, drop a leading "the".
"""

from __future__ import annotations

import unicodedata

from pipeline.data.items import QAItem

_JOINERS = frozenset("'’‘ʻʼ`´.")
_ARTICLES = ("the",)


def normalize(text: str) -> str:
    """Canonical form of a short answer for comparison."""
    text = unicodedata.normalize("NFKD", text)
    chars: list[str] = []
    for c in text:
        if unicodedata.combining(c) or c in _JOINERS:
            continue
        chars.append(" " if unicodedata.category(c)[0] in "PSZC" else c)
    words = "".join(chars).casefold().split()
    if words and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def answer_forms(item: QAItem) -> tuple[str, ...]:
    """The item's normalised answer and aliases, deduplicated, answer first, empty forms dropped."""
    forms: list[str] = []
    for text in (item.answer, *item.aliases):
        form = normalize(text)
        if form and form not in forms:
            forms.append(form)
    return tuple(forms)


def first_line(generation: str) -> str:
    """The generation up to its first newline, without surrounding spaces."""
    return generation.strip(" \t\r").split("\n", 1)[0].strip()


def matches(generation: str, item: QAItem) -> bool:
    """True if the generation's first line equals, or starts at a word boundary with, an accepted answer."""
    got = normalize(first_line(generation))
    if not got:
        return False
    return any(got == form or got.startswith(form + " ") for form in answer_forms(item))
