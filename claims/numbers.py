"""Finding numbers in text, and rendering statements whose numbers all come from results."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from claims.errors import ExpressionError

#: A standalone number: not glued to letters (L1, 270M, gemma-3 are names, not quantities).
NUMBER = re.compile(r"(?<![\w.\-/])[-+−]?\d+(?:[.,]\d+)*(?:\s?(?:%|pp|x|×))?(?![\w])")
_FIELD = re.compile(r"^(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?P<index>(?:\[\w+\])*)$")


def find_numbers(text: str) -> list[re.Match[str]]:
    return list(NUMBER.finditer(text))


class StatementFormatter(string.Formatter):
    """str.format over a namespace, allowing only names, dotted names, integer indices and
    (unquoted) keys, as in {ci[0]} or {minimum_detectable[mde_pp]}."""

    def __init__(self, namespace: Mapping[str, Any], where: str):
        self.namespace = namespace
        self.where = where

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        match = _FIELD.match(field_name.strip())
        if not match:
            raise ExpressionError(f"{self.where}: {{{field_name}}} is not a plain name or name[index]")
        value: Any = self.namespace
        for part in match["name"].split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ExpressionError(f"{self.where}: the result has no {match['name']!r}")
            value = value[part]
        for index in re.findall(r"\[(\w+)\]", match["index"]):
            try:
                value = value[int(index)] if index.isdigit() else value[index]
            except (IndexError, KeyError, TypeError):
                raise ExpressionError(f"{self.where}: cannot index {match['name']} with [{index}]") from None
        if value is None:
            raise ExpressionError(f"{self.where}: {field_name} is missing (None) in the result")
        return value, field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError) as exc:
            raise ExpressionError(f"{self.where}: cannot format {value!r} with {format_spec!r}: {exc}") from None


def render_statement(template: str, namespace: Mapping[str, Any], where: str) -> str:
    return StatementFormatter(namespace, where).format(" ".join(template.split()))


def literal_numbers(template: str) -> list[str]:
    """Numbers typed into a statement's text (outside {fields}): each one is a hand-typed number."""
    literal = "".join(text for text, *_ in string.Formatter().parse(template))
    return [m.group(0) for m in find_numbers(literal)]


def metric_format(spec: Any) -> str:
    """The format a claim's statement gives its metric (e.g. '.1%'), so that every other place
    that prints the metric (site, paper, diff) shows it alike."""
    for _, name, fmt, _ in string.Formatter().parse(" ".join(spec.statement.split())):
        if name is None or not fmt:
            continue
        base = re.split(r"[\[.]", name.strip())[0]
        if base in (spec.metric, f"{spec.metric}_ci"):
            return fmt
    return "d" if spec.kind == "count" else ".3g"


def fmt_value(value: Any, spec: str = ".3g") -> str:
    """A number in the claim's own format ('.1%', '.2f', ...), whole numbers without decimals."""
    if value is None:
        return "?"
    try:
        if spec in ("d", ".3g", "g") and float(value).is_integer():
            return str(int(value))
        return format(value, spec)
    except (TypeError, ValueError):
        return format(float(value), ".3g")
