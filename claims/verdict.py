"""The words for a claim's relation to its control and for the power behind a null.

One table, so that the terminal, the site's cards and claim pages, the paper's table, paper.md
and claims.json all say the same thing: a renderer takes its words from here, never its own.

    expect   control assertion   words
    effect   holds               beats control
    effect   does not hold       control not beaten
    null     holds               within control range
    null     does not hold       outside control range
    any      not evaluated       not evaluated
    any      no control          no control (reason given)
    any      unbalanced, or too few draws   control not valid (why)

A positive control (role: positive, a known effect the method must detect) reads "detected" /
"missed", whatever the claim expects.
"""

from __future__ import annotations

from typing import Any

CONTROL_WORDS: dict[tuple[str, bool], str] = {
    ("effect", True): "beats control",
    ("effect", False): "control not beaten",
    ("null", True): "within control range",
    ("null", False): "outside control range",
}
POSITIVE_WORDS = {True: "detected", False: "missed"}
#: A control whose balance or draws fail the referee's checks (claims/referee.py) supports nothing.
INVALID = "control not valid"
NOT_EVALUATED = "not evaluated"
NO_CONTROL = "no control (reason given)"
#: Whether the words are good news for the claim (CSS classes: verdict-yes / verdict-no).
EXPECT_TEXT = {
    "effect": "expects an effect: the control must be beaten",
    "null": "expects a null: the effect must lie within the control's range or an equivalence margin",
}


def control_verdict(expect: str, control: dict[str, Any]) -> str:
    """The words for a claim's control: from its expectation and whether the control assertion held."""
    if control.get("none"):
        return NO_CONTROL
    if control.get("invalid"):
        return f"{INVALID} ({control['invalid']})"
    holds = control.get("holds")
    if not control or holds is None:
        return NOT_EVALUATED
    if control.get("role") == "positive":
        return POSITIVE_WORDS[bool(holds)]
    return CONTROL_WORDS[(expect, bool(holds))]


def verdict_class(words: str) -> str:
    """A CSS class for the words: yes when they support the claim as written, no when they do not."""
    if words in ("beats control", "within control range", "detected"):
        return "verdict-yes"
    if words in ("control not beaten", "outside control range", "missed") or words.startswith(INVALID):
        return "verdict-no"
    return "verdict-none"


def power_text(power: dict[str, Any]) -> str:
    """The power line of a null claim, e.g. 'informative: the smallest detectable effect (4.1) is
    within the margin that matters (10)'."""
    if not power:
        return ""
    margin = _num(power.get("margin"))
    holds = power.get("holds")
    if power.get("mde_expr"):
        mde = _num(power.get("mde"))
        if holds is None:
            return f"power not evaluated (margin {margin})"
        if holds:
            return f"informative: the smallest detectable effect ({mde}) is within the margin that matters ({margin})"
        return f"underpowered: the smallest detectable effect ({mde}) exceeds the margin that matters ({margin})"
    ci = power.get("interval")
    if holds is None or not ci:
        return f"equivalence not evaluated (margin ±{margin})"
    shown = f"{_num(ci[0])} to {_num(ci[1])}"
    if holds:
        return f"equivalent to zero: the interval {shown} lies within ±{margin}"
    return f"not shown equivalent: the interval {shown} reaches beyond ±{margin}"


def _num(value: Any) -> str:
    if value is None:
        return "?"
    value = float(value)
    return f"{int(value)}" if value.is_integer() and abs(value) >= 1 else f"{value:.3g}"
