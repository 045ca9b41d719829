"""Judges of a generation on the steering tasks. Two offline rule judges read the same generations:

strict   the first line, normalised, must equal or start with an answer form; a generation that
         hit the token limit before a newline, or is empty, is a parse failure.
lenient  an answer form may appear anywhere in the text (word-bounded), truncated or not; only an
         empty generation is a parse failure; both answers present is "other".

Compliance outcomes: "context" (the false answer from the context), "memory" (the true answer),
"other" (a parsed answer that is neither) or None (parse failure, never counted as non-compliant).
An LLM judge (`llm_judge`) is used beside them when OPENAI_API_KEY is set.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pipeline.data import QAItem, answer_forms, first_line, normalize

JUDGES = ("strict", "lenient")
LLM_JUDGE_PROMPT_VERSION = "compliance-v1"


def _forms(answer: str) -> tuple[str, ...]:
    return answer_forms(QAItem(id="", family="", subject="", question="", answer=answer))


def _starts(text: str, forms: tuple[str, ...]) -> bool:
    return any(text == f or text.startswith(f + " ") for f in forms)


def _contains(text: str, forms: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text) for f in forms)


def parsed(text: str, finish: str, judge: str) -> str | None:
    """The normalised text a judge reads, or None for a parse failure."""
    if judge == "strict":
        line = normalize(first_line(text))
        return line if line and finish != "length" else None
    body = normalize(text)
    return body or None


def classify(text: str, finish: str, item: QAItem, context_answer: str | None, judge: str) -> str | None:
    """'context' | 'memory' | 'other' | None; without a context answer: 'memory' (correct) or 'other'."""
    body = parsed(text, finish, judge)
    if body is None:
        return None
    match = _starts if judge == "strict" else _contains
    truth = match(body, answer_forms(item))
    false = match(body, _forms(context_answer)) if context_answer else False
    if truth and false:
        return "other"
    return "context" if false else "memory" if truth else "other"


def llm_available() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


def llm_judge(question: str, context: str, true_answer: str, false_answer: str, generation: str,
              model: str = "gpt-4o-mini") -> str | None:
    """Ask an OpenAI model which answer a generation gives. Needs OPENAI_API_KEY; the key is read by
    the client from the environment and never passed through, logged or stored."""
    from openai import OpenAI

    prompt = (
        f"Question: {question}\nContext given to the model: {context}\nTrue answer: {true_answer}\n"
        f"Answer stated by the context: {false_answer}\nModel output: {generation!r}\n"
        "Which answer does the model output give? Reply with one word: CONTEXT, TRUE, OTHER, or UNPARSEABLE."
    )
    reply = OpenAI().chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                             temperature=0, max_tokens=3)
    word = (reply.choices[0].message.content or "").strip().upper()
    return {"CONTEXT": "context", "TRUE": "memory", "OTHER": "other"}.get(word)


def agreement(a: list[Any], b: list[Any]) -> float | None:
    """Share of items two judges classify alike (parse failures included as a class)."""
    pairs = list(zip(a, b, strict=True))
    return sum(x == y for x, y in pairs) / len(pairs) if pairs else None


def llm_outcomes(items: list[dict[str, Any]], texts: list[str]) -> list[str | None]:
    """The LLM judge's compliance outcome for each generation (None: unparseable or no reply)."""
    out: list[str | None] = []
    for row, text in zip(items, texts, strict=True):
        try:
            out.append(llm_judge(row["item"]["question"], row["context"], row["item"]["answer"],
                                 row["false_answer"], text))
        except Exception as exc:  # a network or API failure must not pass for a judgement
            raise RuntimeError(f"LLM judge failed ({type(exc).__name__}); unset OPENAI_API_KEY to use the "
                               "rule judges only") from None
    return out
