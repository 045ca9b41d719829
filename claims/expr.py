"""A small, safe expression language for claim assertions.

Assertions such as ``accuracy_ci[0] > control.accuracy_ci[1] + 0.02`` are parsed with Python's
``ast`` and evaluated by walking a whitelist of node types: comparisons (chained too),
``and``/``or``/``not``, arithmetic, constant subscripts, ``control.<name>`` lookups and the
functions ``abs``, ``min``, ``max``, ``len``, ``round``. Nothing else runs: no calls to other
functions, no attribute access on objects, no comprehensions, no ``eval``.

Bounded work: an expression is at most MAX_LENGTH characters and MAX_DEPTH levels deep;
arithmetic takes numbers only (no string or list repetition); a power's exponent is bounded, so
``9**9**9`` is refused at once instead of hanging. Runtime faults (division by zero, overflow,
comparing a string with a number) raise ExpressionError naming the spec field.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Mapping
from typing import Any

from claims.errors import EvaluationFault, ExpressionError

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
MAX_LENGTH = 2000
MAX_DEPTH = 40
MAX_EXPONENT = 1024  # |exponent| of a power; results beyond a float's range are refused too
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def parse(source: str, where: str) -> ast.Expression:
    """Parse and check an expression; raise ExpressionError naming `where` on bad syntax."""
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"{where}: the expression is {len(source)} characters long (at most {MAX_LENGTH})")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{where}: cannot parse {source!r}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"{where}: the expression is too deeply nested to parse") from None
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"{where}: the expression is nested more than {MAX_DEPTH} levels deep")
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
    evaluator = _Evaluator(namespace, where, source)
    try:
        return evaluator.visit(tree.body)
    except ZeroDivisionError:
        raise evaluator.fault("division by zero") from None
    except OverflowError:
        raise evaluator.fault("a number overflows") from None
    except RecursionError:  # pragma: no cover (parse bounds the depth)
        raise evaluator.fail("the expression is too deep") from None


def referenced(source: str) -> list[str]:
    """The dotted names an expression reads (function names excluded), in order of appearance."""
    tree = ast.parse(source.strip(), mode="eval")
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name) and id(node) not in called:
            name = _dotted(node)
            if name and not any(o.startswith(name + ".") for o in out) and name not in out:
                out = [o for o in out if not name.startswith(o + ".")] + [name]
    return out


def thresholds(source: str) -> list[tuple[str, float, bool]]:
    """The constants an expression compares a name with: (dotted name, constant, under abs()).

    `auroc_ci[0] > 0.5` gives ("auroc_ci", 0.5, False); `abs(x) < 0.05` gives ("x", 0.05, True);
    comparisons of two names, or of arithmetic, give nothing. Charts draw these as the lines the
    assertion tests against."""
    found: list[tuple[str, float, bool]] = []
    for node in ast.walk(ast.parse(source.strip(), mode="eval")):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for a, b in zip(operands, operands[1:], strict=False):
            for side, other in ((a, b), (b, a)):
                name, under_abs = _compared_name(side)
                constant = _constant(other)
                if name and constant is not None and (name, constant, under_abs) not in found:
                    found.append((name, constant, under_abs))
    return found


def _compared_name(node: ast.AST) -> tuple[str, bool]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs" and node.args:
        return _compared_name(node.args[0])[0], True
    while isinstance(node, ast.Subscript):
        node = node.value
    return _dotted(node), False


def _constant(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _depth(node: ast.AST) -> int:
    children = list(ast.iter_child_nodes(node))
    return 1 + (max(map(_depth, children)) if children else 0)


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

    def fault(self, message: str) -> EvaluationFault:
        return EvaluationFault(f"{self.where}: {message} in {self.source!r}")

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name | ast.Attribute):
            return self.lookup(_dotted(node))
        if isinstance(node, ast.BoolOp):
            values = (self.visit(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if not isinstance(node.op, ast.Not):
                self.require_numbers(operand, arithmetic=True)
            return _UNARY[type(node.op)](operand)
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            self.require_numbers(left, right, arithmetic=True)
            if isinstance(node.op, ast.Pow):
                return self.power(left, right)
            return _check_finite(self, _BINOPS[type(node.op)](left, right))
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                self.require_numbers(left, right, arithmetic=isinstance(op, _ORDERING))
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
            if node.func.id == "round" and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > 100:
                raise self.fault("round() takes at most 100 digits")
            try:
                return _FUNCTIONS[node.func.id](*args)
            except (TypeError, ValueError, OverflowError):
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

    def require_numbers(self, *values: Any, arithmetic: bool = False) -> None:
        """Missing values are errors, never False; arithmetic and ordering take numbers only."""
        for value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise self.fail("a value is missing (None or NaN)")
            if arithmetic and not isinstance(value, int | float):
                raise self.fault(f"arithmetic and ordering take numbers, not {type(value).__name__} {_short(value)}")

    def power(self, base: float, exponent: float) -> float:
        if abs(exponent) > MAX_EXPONENT:
            raise self.fault(f"an exponent of {_short(exponent)} is too large (at most {MAX_EXPONENT})")
        if base == 0 and exponent < 0:
            raise ZeroDivisionError
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 \
                and exponent * max(abs(base).bit_length() - 1, 0) > 4096:
            raise OverflowError
        result = float(base) ** float(exponent) if isinstance(base, float) or isinstance(exponent, float) or exponent < 0 \
            else base ** exponent
        if isinstance(result, complex):
            raise self.fault("a power of a negative number is not a real number")
        return _check_finite(self, result)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_finite(evaluator: _Evaluator, value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        raise OverflowError
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4096:
        raise OverflowError
    return value


_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.Load, ast.BoolOp, ast.And, ast.Or,
    ast.UnaryOp, ast.USub, ast.UAdd, ast.Not, ast.BinOp, *_BINOPS, ast.Compare, *_COMPARE,
    ast.Subscript, ast.Call, ast.List, ast.Tuple,
)
