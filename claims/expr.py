"""A small, safe expression language for claim assertions.

Assertions such as ``accuracy_ci[0] > control.accuracy_ci[1] + 0.02`` are parsed with Python's
``ast`` and evaluated by walking a whitelist of node types: comparisons (chained too),
``and``/``or``/``not``, arithmetic, constant subscripts, ``control.<name>`` lookups and the
functions ``abs``, ``min``, ``max``, ``len``, ``round``. Nothing else runs: no calls to other
functions, no attribute access on objects, no comprehensions, no ``eval``.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Mapping
from typing import Any

from claims.errors import ExpressionError

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS = {"abs": abs, "min": min, "max": max, "len": len, "round": round}


def parse(source: str, where: str) -> ast.Expression:
    """Parse and check an expression; raise ExpressionError naming `where` on bad syntax."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{where}: cannot parse {source!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(
                f"{where}: {type(node).__name__} is not allowed in an assertion ({source!r})"
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
        ):
            raise ExpressionError(
                f"{where}: only {', '.join(sorted(_FUNCTIONS))} may be called ({source!r})"
            )
        if isinstance(node, ast.Attribute) and not _dotted(node):
            raise ExpressionError(f"{where}: attribute access is only allowed on names ({source!r})")
    return tree


def evaluate(source: str, namespace: Mapping[str, Any], where: str = "expression") -> Any:
    """Evaluate `source` against `namespace` (nested mappings for dotted names)."""
    tree = parse(source, where)
    return _Evaluator(namespace, where, source).visit(tree.body)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


class _Evaluator:
    def __init__(self, namespace: Mapping[str, Any], where: str, source: str):
        self.namespace = namespace
        self.where = where
        self.source = source

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"{self.where}: {message} in {self.source!r}")

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name | ast.Attribute):
            return self.lookup(_dotted(node))
        if isinstance(node, ast.BoolOp):
            values = (self.visit(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self.visit(node.operand))
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            self.require_numbers(left, right)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                self.require_numbers(left, right)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Subscript):
            container, index = self.visit(node.value), self.visit(node.slice)
            try:
                return container[index]
            except (IndexError, KeyError, TypeError):
                raise self.fail(f"cannot index {container!r} with {index!r}") from None
        if isinstance(node, ast.Call):
            args = [self.visit(a) for a in node.args]
            try:
                return _FUNCTIONS[node.func.id](*args)
            except (TypeError, ValueError):
                raise self.fail(f"{node.func.id}() cannot take {args!r}") from None
        if isinstance(node, ast.List | ast.Tuple):
            return [self.visit(e) for e in node.elts]
        raise self.fail(f"{type(node).__name__} is not allowed")  # pragma: no cover (parse checks)

    def lookup(self, dotted: str) -> Any:
        scope: Any = self.namespace
        walked: list[str] = []
        for part in dotted.split("."):
            if not isinstance(scope, Mapping) or part not in scope:
                options = list(scope) if isinstance(scope, Mapping) else []
                close = difflib.get_close_matches(part, options, n=1)
                hint = f" (did you mean {'.'.join([*walked, close[0]])!r}?)" if close else ""
                raise self.fail(f"unknown name {'.'.join([*walked, part])!r}{hint}")
            scope = scope[part]
            walked.append(part)
        return scope

    def require_numbers(self, *values: Any) -> None:
        for value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise self.fail("a value is missing (None or NaN)")


_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.Load, ast.BoolOp, ast.And, ast.Or,
    ast.UnaryOp, ast.USub, ast.UAdd, ast.Not, ast.BinOp, *_BINOPS, ast.Compare, *_COMPARE,
    ast.Subscript, ast.Call, ast.List, ast.Tuple,
)
