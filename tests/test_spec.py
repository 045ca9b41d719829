"""Malformed specs are reported as file:line: field: message, all at once, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.errors import SpecError
from claims.spec import load_spec, load_specs

GOOD = """\
id: good
title: A good claim
statement: The value is {value:.2f}.
experiment: fx_mean
config: {shift: 1.0}
metric: value
uncertainty: {method: bootstrap, level: 0.95}
assert: "value_ci[0] > 0.5"
control:
  experiment: fx_mean
  config: {shift: 0.0}
  assert: "value_ci[0] > control.value_ci[1]"
"""


def write(tmp_path, text, name="good"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_good_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.control_spec.assert_ == "value_ci[0] > control.value_ci[1]"
    assert spec.kind == "estimate" and spec.status == "required"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("title: A good claim", "title: A good claim\ncolour: blue"), "good.yaml:3: colour: unknown field"),
        (("metric: value\n", ""), "good.yaml:1: metric: Field required"),
        (("{method: bootstrap, level: 0.95}", "{method: bootstrap, level: high}"),
         "good.yaml:7: uncertainty.level: Input should be a valid number"),
        (("{method: bootstrap, level: 0.95}", "{method: guess, level: 0.95}"),
         "good.yaml:7: uncertainty.method: Input should be 'bootstrap', 'wilson'"),
        (("  assert: \"value_ci[0] > control.value_ci[1]\"", "  asert: x"),
         "good.yaml:12: control.asert: unknown field"),
        (("assert: \"value_ci[0] > 0.5\"", "assert: \"value_ci[0] >\""), "good.yaml:8: assert: cannot parse"),
        (("assert: \"value_ci[0] > 0.5\"", "assert: \"__import__('os').system('x')\""),
         "good.yaml:8: assert: only abs, len, max, min, round may be called"),
        (("config: {shift: 1.0}", "config: {shift: 1.0"), "good.yaml:6: invalid YAML"),
        (("title: A good claim", "title: A good claim\ntitle: again"), "good.yaml:3: duplicate key 'title'"),
        (("experiment: fx_mean", "experiment: 'not a module!'"), "good.yaml:4: experiment: String should match pattern"),
        (("id: good", "id: other"), "good.yaml:1: id: 'other' must equal the file name 'good'"),
        (("control:\n  experiment: fx_mean\n  config: {shift: 0.0}\n  assert: \"value_ci[0] > control.value_ci[1]\"\n",
          "control: none\n"), "good.yaml:1: (top level): control: none needs a written why_no_control"),
        (("uncertainty: {method: bootstrap, level: 0.95}\n", ""),
         "a claim of kind 'estimate' needs uncertainty"),
        (("title: A good claim", "title: A good claim\nstatus: blocked"), "status 'blocked' needs a written reason"),
    ],
)
def test_malformed_spec_names_file_line_field(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path)
    assert expected in info.value.message


def test_all_errors_reported_together(tmp_path):
    write(tmp_path, GOOD.replace("title: A good claim", "title: 3\ncolour: red"), "good")
    write(tmp_path, GOOD.replace("id: good", "id: other").replace("metric: value\n", ""), "other")
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path, tmp_path)
    lines = info.value.message.splitlines()
    assert any(line.startswith("good.yaml:3: colour") for line in lines)
    assert any(line.startswith("other.yaml:1: metric") for line in lines)


def test_empty_and_non_mapping(tmp_path):
    with pytest.raises(SpecError, match="empty.yaml:1: the file is empty"):
        load_spec(write(tmp_path, "", "empty"), tmp_path)
    with pytest.raises(SpecError, match="list.yaml:1: a claim spec must be a mapping"):
        load_spec(write(tmp_path, "- a\n- b\n", "list"), tmp_path)


def test_unknown_dependency(tmp_path):
    write(tmp_path, GOOD + "depends_on: [missing-claim]\n")
    with pytest.raises(SpecError, match="depends_on: unknown claim 'missing-claim'"):
        load_specs(tmp_path, tmp_path)


def test_cli_shows_spec_error_without_traceback(fx):
    fx.spec("good", GOOD.replace("title: A good claim", "title: A good claim\ncolour: blue"))
    result = CliRunner().invoke(cli, ["--project", str(fx.root), "verify"])
    assert result.exit_code == 2
    assert "specs/good.yaml:3: colour: unknown field" in result.output
    assert "Traceback" not in result.output


def test_config_checked_against_experiment_config(fx):
    from tests.conftest import MEAN

    fx.module("fx_mean", MEAN)
    fx.spec("good", GOOD.replace("config: {shift: 1.0}", "config: {shfit: 1.0}"))
    result = CliRunner().invoke(cli, ["--project", str(fx.root), "verify"])
    assert result.exit_code == 1
    assert "specs/good.yaml: experiment.config: shfit: unknown field" in result.output
