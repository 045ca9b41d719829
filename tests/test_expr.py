from __future__ import annotations

import pytest

from claims import expr
from claims.errors import ExpressionError

NS = {"accuracy": 0.8, "accuracy_ci": [0.75, 0.85], "n": 10, "control": {"accuracy_ci": [0.5, 0.6]}}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("accuracy_ci[0] > control.accuracy_ci[1]", True),
        ("accuracy_ci[0] > control.accuracy_ci[1] + 0.2", False),
        ("0.5 < accuracy < 0.9", True),
        ("abs(accuracy - 0.8) < 1e-9 and n >= 10", True),
        ("not (n > 10) or accuracy < 0", True),
        ("max(accuracy_ci) - min(accuracy_ci)", pytest.approx(0.1)),
        ("len(accuracy_ci) == 2", True),
    ],
)
def test_evaluates(source, value):
    assert expr.evaluate(source, NS) == value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("accuracy_cj[0] > 0", "unknown name 'accuracy_cj' (did you mean 'accuracy_ci'?)"),
        ("control.acuracy_ci[0] > 0", "unknown name 'control.acuracy_ci' (did you mean 'control.accuracy_ci'?)"),
        ("__import__('os')", "only abs, len, max, min, round may be called"),
        ("accuracy.__class__", "unknown name 'accuracy.__class__'"),
        ("[x for x in accuracy_ci]", "ListComp is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("accuracy_ci[5]", "cannot index"),
        ("accuracy >", "cannot parse"),
        ("(1).real", "attribute access is only allowed on names"),
    ],
)
def test_refuses(source, message):
    with pytest.raises(ExpressionError) as info:
        expr.evaluate(source, NS, "spec.yaml: assert")
    assert message in info.value.message
    assert info.value.message.startswith("spec.yaml: assert")


def test_function_on_a_missing_value_is_an_error():
    with pytest.raises(ExpressionError, match=r"abs\(\) cannot take \[None\]"):
        expr.evaluate("abs(x) > 0", {"x": None})


def test_missing_value_is_an_error_not_false():
    with pytest.raises(ExpressionError, match="a value is missing"):
        expr.evaluate("x > 0", {"x": None})
