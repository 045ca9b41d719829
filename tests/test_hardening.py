"""Bad input never becomes a traceback, a hang or a huge file: each case gives one clear line and
the documented exit code. Nothing is lost (gc across profiles, corrupt blobs replaced) and nothing
leaks (secrets refused in configs, redacted from what is recorded)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims import expr
from claims.cli import cli
from claims.errors import BuildError, EvaluationFault, ExpressionError, SpecError
from claims.node import Node
from claims.runner import Runner
from claims.spec import load_spec, load_specs
from claims.store import clean_debris
from tests.conftest import MEAN, MEAN_SPEC
from tests.test_spec import GOOD, write


def run_cli(fx, *args, env=None):
    return CliRunner().invoke(cli, ["--project", str(fx.root), *args], catch_exceptions=False, env=env)


# ---- the spec loader ---------------------------------------------------------------------------
NULL = GOOD.replace('  assert: "value_ci[0] > control.value_ci[1]"',
                    '  assert: "abs(value) <= control.value_ci[1]"') + "expect: null\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NULL, "good.yaml:1: (top level): expect: null needs power (margin and why, with mde or as an equivalence "
               "test): a null from an underpowered test is not a finding"),
        (GOOD + "power: {margin: 5, why: matters}\n", "good.yaml:1: (top level): power is for expect: null claims"),
        (NULL + "power: {margin: 0, why: x}\n", "good.yaml:14: power.margin: Input should be greater than 0"),
        (NULL + "power: {margin: 5, mde: '3 > 1', why: x}\n", "good.yaml:14: power.mde: reads no field of the result"),
        (GOOD.replace('assert: "value_ci[0] > 0.5"', 'assert: "True"'),
         "good.yaml:8: assert: reads no field of the result: a vacuous assertion cannot fail"),
        (GOOD.replace('assert: "value_ci[0] > 0.5"', 'assert: "1 > 0"'),
         "good.yaml:8: assert: reads no field of the result: a vacuous assertion cannot fail"),
        (GOOD.replace('assert: "value_ci[0] > 0.5"', 'assert: "level > 0.5"'),
         "good.yaml:8: assert: reads no field of the result: a vacuous assertion cannot fail"),
        (GOOD.replace('"value_ci[0] > control.value_ci[1]"', '"value_ci[0] > 0"'),
         "good.yaml:12: control.assert: reads no control.<field>: a control assertion must compare with the control"),
        (GOOD.replace("config: {shift: 1.0}", "config: {shift: 1.0, api_key: sk-abc}"),
         "good.yaml:5: config: api_key: looks like a secret; pass secrets through the environment, never a config"),
        (GOOD.replace("config: {shift: 0.0}", "config: {hf_token: abc}"),
         "good.yaml:11: control.config: hf_token: looks like a secret"),
        (GOOD.replace("config: {shift: 1.0}", "config: {shift: .nan}"), "good.yaml:5: config: shift: nan is not a finite number"),
        (GOOD.replace("config: {shift: 1.0}", "config: {shift: [1, .inf]}"),
         "good.yaml:5: config: shift[1]: inf is not a finite number"),
        (GOOD.replace("{value:.2f}", "{value:.2f"), "good.yaml:3: statement: cannot be formatted: unmatched '{' in format spec"),
        (GOOD.replace("{value:.2f}", "{value:999999999.2f}"),
         "good.yaml:3: statement: {value:999999999.2f}: a width of 999999999 is absurd (at most 40)"),
        (GOOD.replace("{value:.2f}", "{value:{value}}"), "nested fields in a format spec are not allowed"),
        (GOOD.replace("{value:.2f}", "{value!r}"), "{value!r}: conversions are not allowed"),
        (GOOD.replace("title: A good claim", "title: &t A good claim\nsection: *t"),
         "good.yaml:3: YAML aliases (*t) are not allowed in a spec: write the value out"),
        ("a: &a ['x','x']\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n", "good.yaml:2: YAML aliases (*a) are not allowed"),
        ("id: good\nself: &s [*s]\n", "good.yaml:2: YAML aliases (*s) are not allowed"),
        ("id: good\n? [a, b]\n: 1\n", "good.yaml:2: a key must be a plain name, not list ['a', 'b']"),
    ],
)
def test_spec_loader_refuses_with_file_line_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path)
    assert expected in info.value.message, info.value.message
    assert "\n" not in info.value.message.strip()


def test_non_utf8_spec_names_line_and_byte(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_bytes(GOOD.replace("A good claim", "A good cl\xe4im").encode("latin-1"))
    with pytest.raises(SpecError, match=r"good.yaml:2: not UTF-8 text \(byte 0xe4 at offset \d+\)"):
        load_spec(path, tmp_path)


def test_yml_specs_load_and_duplicates_are_refused(tmp_path):
    write(tmp_path, GOOD)
    (tmp_path / "other.yml").write_text(GOOD.replace("id: good", "id: other"))
    assert set(load_specs(tmp_path, tmp_path)) == {"good", "other"}
    (tmp_path / "good.yml").write_text(GOOD)
    with pytest.raises(SpecError, match=r"good.yml:1: id: 'good' is also defined by good.yaml"):
        load_specs(tmp_path, tmp_path)


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        ({"a": ["a"]}, "a.yaml:13: depends_on: a claim cannot depend on itself"),
        ({"a": ["b"], "b": ["a"]}, "b.yaml:13: depends_on: cycle a -> b -> a"),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "c.yaml:13: depends_on: cycle a -> b -> c -> a"),
    ],
)
def test_dependency_cycles_are_spec_errors(tmp_path, deps, expected):
    for claim_id in ("a", "b", "c"):
        extra = f"depends_on: [{', '.join(deps.get(claim_id, []))}]\n" if deps.get(claim_id) else ""
        write(tmp_path, GOOD.replace("id: good", f"id: {claim_id}") + extra, claim_id)
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path, tmp_path)
    assert expected in info.value.message


def test_cycle_exits_2_on_the_command_line(fx):
    fx.module("fx_mean", MEAN)
    fx.spec("a", MEAN_SPEC.format(id="a", shift=1.0) + "depends_on: [b]\n")
    fx.spec("b", MEAN_SPEC.format(id="b", shift=1.0) + "depends_on: [a]\n")
    out = run_cli(fx, "verify")
    assert out.exit_code == 2 and "depends_on: cycle" in out.output and "Traceback" not in out.output


REQUIRES_CYCLE = '''
from claims import Estimate, Result

def requires(config):
    return {"other": ("fx_cycle_b", {})}

def run(config, ctx):
    return Result(estimates={"x": Estimate(value=1.0, ci=(0.0, 2.0), level=0.95, n=3, method="analytic")})
'''
ONE_NODE_SPEC = """
id: {id}
title: One node
statement: x is {{x:.2f}}.
experiment: {experiment}
metric: x
uncertainty: {{method: analytic, level: 0.95}}
assert: "x_ci[0] > 0"
control: none
why_no_control: a test fixture
"""


def test_requires_cycle_is_a_spec_error_with_file_line(fx):
    fx.module("fx_cycle_a", REQUIRES_CYCLE)
    fx.module("fx_cycle_b", REQUIRES_CYCLE.replace("fx_cycle_b", "fx_cycle_a"))
    fx.spec("cyc", ONE_NODE_SPEC.format(id="cyc", experiment="fx_cycle_a"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 2, out.output
    assert "specs/cyc.yaml:4: experiment: requires() forms a cycle: fx_cycle_a[" in out.output
    assert "RecursionError" not in out.output and "Traceback" not in out.output


@pytest.mark.parametrize(("returned", "message"), [
    ("['fx_x']", "requires() must return {name: (module, config)}, not list"),
    ("{'up': 'fx_x'}", "requires() must return {name: (module, config)}; entry 'up' is 'fx_x'"),
])
def test_requires_of_the_wrong_type_is_a_clear_error(fx, returned, message):
    fx.module("fx_badreq", REQUIRES_CYCLE.replace('{"other": ("fx_cycle_b", {})}', returned))
    fx.spec("bad", ONE_NODE_SPEC.format(id="bad", experiment="fx_badreq"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1 and message in out.output and "Traceback" not in out.output


# ---- the assertion evaluator -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "message", "fault"),
    [
        ("x / 0 > 1", "division by zero in 'x / 0 > 1'", True),
        ("'a' < x", "arithmetic and ordering take numbers, not str 'a'", True),
        ("10.0 ** 400 > x", "a number overflows", True),
        ("9**9**9 > x", "an exponent of 387420489 is too large (at most 1024)", True),
        ("len('a' * 10**10) > x", "arithmetic and ordering take numbers, not str 'a'", True),
        ("x_ci * 10**9 > 0", "arithmetic and ordering take numbers, not list [0.1, 0.3]", True),
        ("(-8) ** 0.5 > x", "a power of a negative number is not a real number", True),
        ("x " + "+ 1 " * 1000 + "> 0", "the expression is 4005 characters long (at most 2000)", False),
        ("abs(" * 60 + "x" + ")" * 60 + " > 0", "nested more than 40 levels deep", False),
        ("-" * 100 + "x > 0", "nested more than 40 levels deep", False),
    ],
)
def test_evaluator_bounds_and_faults(source, message, fault):
    with pytest.raises(ExpressionError) as info:
        expr.evaluate(source, {"x": 0.2, "x_ci": [0.1, 0.3]}, "spec.yaml: assert")
    assert message in info.value.message and info.value.message.startswith("spec.yaml: assert: ")
    assert isinstance(info.value, EvaluationFault) == fault


def test_an_assertion_fault_is_an_error_and_the_rest_are_still_checked(fx):
    fx.module("fx_mean", MEAN)
    fx.spec("zero", MEAN_SPEC.format(id="zero", shift=1.0).replace('"mean_ci[0] > 0"', '"mean_ci[0] / 0 > 0"'))
    fx.spec("fine", MEAN_SPEC.format(id="fine", shift=1.0))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    report = json.loads((fx.root / "build" / "verify.json").read_text())
    status = {c["id"]: c["status"] for c in report["claims"]}
    assert status == {"fine": "verified", "zero": "error"}
    assert "zero: specs/zero.yaml: assert: division by zero in 'mean_ci[0] / 0 > 0'" in out.output


# ---- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("shift", "'shift' is not KEY=VALUE"),
        ("shift=[1,", "'shift=[1,': cannot parse the value"),
        ("shift=.nan", "'shift=.nan': shift: nan is not a finite number"),
        ("shift=-.inf", "shift: -inf is not a finite number"),
        ("api_key=sk-secret-value", "'api_key=<redacted>': 'api_key' looks like a secret; pass secrets through the "
                                    "environment, never a config"),
    ],
)
def test_bad_set_values_are_usage_errors(mean_project, pair, message):
    out = run_cli(mean_project, "--set", pair, "verify")
    assert out.exit_code == 2 and message in out.output, out.output
    assert "sk-secret-value" not in out.output and "Traceback" not in out.output


@pytest.mark.parametrize("command", [["verify"], ["verify", "--no-run"], ["status"], ["coverage"], ["gc"],
                                     ["build-site"], ["build-paper"]])
def test_a_wrong_project_is_exit_2(tmp_path, command):
    missing = CliRunner().invoke(cli, ["--project", str(tmp_path / "nope"), *command])
    assert missing.exit_code == 2 and "no such project folder" in missing.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(cli, ["--project", str(tmp_path / "empty"), *command])
    assert empty.exit_code == 2 and "not a claims project: no claim specs in claims/specs/" in empty.output


def test_an_unusable_cache_is_exit_2(mean_project, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run_cli(mean_project, "verify", env={"CLAIMS_CACHE": str(blocker)})
    assert out.exit_code == 2 and f"the cache {blocker} (set by $CLAIMS_CACHE" in out.output
    assert "is a file, not a folder" in out.output


def test_an_unwritable_report_path_fails_before_running(mean_project, tmp_path):
    (tmp_path / "dir").mkdir()
    out = run_cli(mean_project, "verify", "--json", str(tmp_path / "dir"))
    assert out.exit_code == 2 and "is a directory" in out.output
    (tmp_path / "file").write_text("")
    out = run_cli(mean_project, "verify", "--json", str(tmp_path / "file" / "report.json"))
    assert out.exit_code == 2 and "cannot be written" in out.output
    assert mean_project.calls("fx_mean") == 0


# ---- the store: sidecars, results, blobs, debris, checkpoints ----------------------------------------
def _sidecar(fx) -> Path:
    return sorted((fx.root / "artifacts" / "fx_mean").glob("*.provenance.json"))[0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_text("[]"), "is not a sidecar (a JSON object), it is list"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "is unreadable (UnicodeDecodeError"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "seed": 7})),
         "was edited: its fields no longer match its integrity hash"),
        (lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "integrity"})),
         "has no integrity hash"),
    ],
)
def test_damaged_sidecars_are_stale_with_the_reason(mean_project, damage, message):
    fx = mean_project
    assert run_cli(fx, "verify").exit_code == 0
    damage(_sidecar(fx))
    out = run_cli(fx, "verify", "--no-run")
    assert out.exit_code == 1 and message in out.output and "Traceback" not in out.output
    assert run_cli(fx, "verify").exit_code == 0  # a run repairs it


def test_a_result_path_that_is_a_folder(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    result = _sidecar(fx).with_name(_sidecar(fx).name.replace(".provenance", ""))
    result.unlink()
    result.mkdir()
    out = run_cli(fx, "verify", "--no-run")
    assert out.exit_code == 1 and "is a folder, not a result" in out.output


def test_a_value_outside_its_own_interval_is_refused(fx):
    fx.module("fx_outside", REQUIRES_CYCLE.replace("def requires(config):\n    return {\"other\": (\"fx_cycle_b\", {})}\n",
                                                   "").replace("value=1.0", "value=5.0"))
    fx.spec("outside", ONE_NODE_SPEC.format(id="outside", experiment="fx_outside"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "fx_outside[44136fa355b3] built an invalid result: Estimate: value 5.0 lies " \
           "outside its own interval (0.0, 2.0)" in out.output


BLOBS_UP = '''
import numpy as np
from claims import Result

def run(config, ctx):
    ctx.save_arrays("data", x=np.arange(5.0))
    return Result(values={"made": 1})
'''
BLOBS_DOWN = '''
from claims import Estimate, Result

def requires(config):
    return {"up": ("fx_blob_up", {})}

def run(config, ctx):
    x = ctx.upstream("up").arrays("data")["x"]
    return Result(estimates={"x": Estimate(value=float(x.mean()), ci=(0.5, 4.0), level=0.95, n=5, method="analytic")})
'''


def verified_blob_chain(fx):
    """A verified two-node project whose upstream keeps an array file: the runner and that file's sha."""
    fx.module("fx_blob_up", BLOBS_UP)
    fx.module("fx_blob_down", BLOBS_DOWN)
    fx.spec("blob", ONE_NODE_SPEC.format(id="blob", experiment="fx_blob_down"))
    assert run_cli(fx, "verify").exit_code == 0
    runner = Runner(fx.project)
    return runner, runner.assess(Node.make("fx_blob_up", {})).result.files["data"]


def test_a_corrupt_blob_is_replaced_not_kept(fx):
    runner, sha = verified_blob_chain(fx)
    up = runner.assess(Node.make("fx_blob_up", {}))
    blob = runner.store.find_blob(sha)
    blob.write_bytes(b"not an npz any more")
    assert runner.store.blob_problem(sha) == "corrupt"
    from claims.context import Upstream

    with pytest.raises(Exception, match="file 'data' is corrupt in the blob cache"):
        Upstream("up", up.node, up.result, runner.store).file("data")
    out = run_cli(fx, "verify", "--rerun")  # the upstream reruns and its blob replaces the corrupt one
    assert out.exit_code == 0, out.output
    assert runner.store.blob_problem(sha) == "" and runner.store.verified_blob(sha) == blob


def test_a_committed_blob_spares_a_fresh_checkout_the_rerun_and_a_tampered_one_is_not_used(fx):
    import gzip
    import shutil

    runner, sha = verified_blob_chain(fx)
    original = runner.store.find_blob(sha).read_bytes()
    kept = runner.store.keep_blob(sha)
    assert kept.parent.parent == fx.project.artifacts_dir / "blobs" and kept.name.endswith(".npz.gz")
    shutil.rmtree(fx.project.cache_dir / "blobs")  # a fresh machine: the results are committed, the cache is empty
    assert runner.store.blob_problem(sha) == ""  # restored from the committed copy
    assert runner.store.find_blob(sha).read_bytes() == original
    out = run_cli(fx, "verify")
    assert out.exit_code == 0 and "running it again" not in out.output and "ran fx_blob_up" not in out.output
    shutil.rmtree(fx.project.cache_dir / "blobs")
    kept.write_bytes(gzip.compress(b"tampered"))
    assert runner.store.blob_problem(sha) == "corrupt"
    from claims.context import Upstream

    up = runner.assess(Node.make("fx_blob_up", {}))
    with pytest.raises(Exception, match="file 'data' is corrupt in the blob cache"):  # never read as the result
        Upstream("up", up.node, up.result, runner.store).file("data")
    assert run_cli(fx, "verify", "--rerun").exit_code == 0  # the upstream reruns and replaces it
    assert runner.store.verified_blob(sha).read_bytes() == original
    assert gzip.decompress(runner.store.keep_blob(sha).read_bytes()) == original


ROWS_DOWN = '''
from claims import Estimate, Result

ROWS_ONLY = ("up",)
SHIFT = {shift}

def requires(config):
    return {{"up": ("fx_blob_up", {{}})}}

def run(config, ctx):
    made = ctx.upstream("up").result.values["made"]{read}
    return Result(estimates={{"x": Estimate(value=made + SHIFT, ci=(0.5, 4.0), level=0.95, n=5, method="analytic")}})
'''


def test_a_rows_only_edge_never_remakes_the_upstreams_files_and_refuses_to_read_them(fx):
    """A summary node that reads an upstream's result and rows only (ROWS_ONLY) runs on a fresh
    machine without the upstream rerunning to remake its large files; reading one of them anyway is
    a clear error, and so is a ROWS_ONLY name that requires() does not return."""
    import shutil

    fx.module("fx_blob_up", BLOBS_UP)
    fx.module("fx_rows_down", ROWS_DOWN.format(shift=1.0, read=""))
    fx.spec("rows", ONE_NODE_SPEC.format(id="rows", experiment="fx_rows_down"))
    assert run_cli(fx, "verify").exit_code == 0
    shutil.rmtree(fx.project.cache_dir / "blobs")  # a fresh machine: the upstream's file is gone
    fx.module("fx_rows_down", ROWS_DOWN.format(shift=2.0, read=""))  # the summary changes and must rerun
    out = run_cli(fx, "verify")
    assert out.exit_code == 0, out.output
    assert "ran fx_rows_down" in out.output and "ran fx_blob_up" not in out.output and "running it again" not in out.output
    runner = Runner(fx.project)  # what Ray's scheduler asks before it makes an upstream's files sure
    down, up = Node.make("fx_rows_down", {}), Node.make("fx_blob_up", {})
    assert runner.reads_files(down, up) is False
    fx.module("fx_files_down", BLOBS_DOWN)
    assert Runner(fx.project).reads_files(Node.make("fx_files_down", {}), up) is True
    fx.module("fx_rows_down", ROWS_DOWN.format(shift=3.0, read='; ctx.upstream("up").arrays("data")'))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "upstream 'up' (fx_blob_up[" in out.output and "is declared ROWS_ONLY: its result and per-item rows can be " \
        "read, not its file 'data'" in out.output
    fx.module("fx_rows_down", ROWS_DOWN.format(shift=1.0, read="").replace('ROWS_ONLY = ("up",)', 'ROWS_ONLY = ("upp",)'))
    out = run_cli(fx, "verify")
    assert out.exit_code != 0 and "ROWS_ONLY names 'upp', which requires() does not return" in out.output
    assert "Traceback" not in out.output


MACHINE_UP = '''
import os
import numpy as np
from claims import Estimate, Result

def run(config, ctx):
    # what another CPU does to a float computation: the last bits move, nothing in the key says so
    x = np.arange(5.0) + float(os.environ.get("FX_LAST_BITS", "0"))
    ctx.save_arrays("data", x=x)
    return Result(estimates={"m": Estimate(value=float(x.mean()), ci=(0.0, 9.0), level=0.95, n=5, method="analytic")})
'''


def test_a_rerun_at_the_same_key_that_gives_another_result_is_named_not_silent(fx, monkeypatch):
    """A fresh machine has lost an upstream's large file: the upstream reruns at its stored key. If
    its output comes back different (another CPU's floating point), everything downstream that read
    the earlier output goes stale, so the engine says which node, what moved and where each was made;
    an identical rerun is recorded as reproduced."""
    import shutil

    fx.module("fx_blob_up", MACHINE_UP)
    fx.module("fx_blob_down", BLOBS_DOWN)
    fx.spec("blob", ONE_NODE_SPEC.format(id="blob", experiment="fx_blob_down"))
    assert run_cli(fx, "verify").exit_code == 0
    shutil.rmtree(fx.project.cache_dir / "blobs")
    out = run_cli(fx, "verify", "--rerun")
    assert out.exit_code == 0 and "not reproduced" not in out.output
    up = json.loads(next((fx.root / "artifacts" / "fx_blob_up").glob("*.provenance.json")).read_text())
    assert up["reproduction"] == {"previous_output": up["output"]["sha256"], "reproduced": True}
    assert up["platform"]["cpu_count"] and "cpu" in up["platform"]
    shutil.rmtree(fx.project.cache_dir / "blobs")
    monkeypatch.setenv("FX_LAST_BITS", "1e-9")
    out = run_cli(fx, "verify", "--rerun")
    assert out.exit_code == 0, out.output
    line = [x for x in out.output.splitlines() if x.startswith("not reproduced: fx_blob_up[")]
    assert line and "1 of 1 estimates moved; largest move m: 2.0 -> 2.000000001; files differ: data" in line[0]
    up2 = json.loads(next((fx.root / "artifacts" / "fx_blob_up").glob("*.provenance.json")).read_text())
    assert up2["reproduction"]["reproduced"] is False and up2["reproduction"]["previous_output"] == up["output"]["sha256"]
    assert up2["reproduction"]["files_differ"] == ["data"] and up2["reproduction"]["previous_platform"] == up["platform"]
    report = json.loads((fx.root / "build" / "verify.json").read_text())
    assert [r["node"].split("[")[0] for r in report["summary"]["not_reproduced"]] == ["fx_blob_up"]


PINNED = '''
import os
from claims import Estimate, Result

def run(config, ctx):
    return Result(estimates={"x": Estimate(value=1.0, ci=(0.5, 2.0), level=0.95, n=5, method="analytic")},
                  values={"seen": os.environ.get("NPY_FX_PIN")})
'''


def test_the_projects_environment_pins_are_set_for_every_run_and_recorded(fx, monkeypatch):
    """`[tool.claims] environment` (e.g. MKL_CBWR, ATEN_CPU_CAPABILITY: CPU kernels pinned so that a
    lost file reruns bit for bit elsewhere) is set before experiments run and lands in the sidecar;
    a shell value that differs wins with one warning line; anything provenance would not record is
    refused with one line."""
    monkeypatch.delenv("NPY_FX_PIN", raising=False)
    fx.root.joinpath("pyproject.toml").write_text(
        '[tool.claims]\nspecs = "specs"\n[tool.claims.environment]\nNPY_FX_PIN = "avx2"\n')
    fx.module("fx_pinned", PINNED)
    fx.spec("pinned", ONE_NODE_SPEC.format(id="pinned", experiment="fx_pinned"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 0, out.output
    side = json.loads(next((fx.root / "artifacts" / "fx_pinned").glob("*.provenance.json")).read_text())
    result = json.loads(next((fx.root / "artifacts" / "fx_pinned").glob("*[0-9a-f].json")).read_text())
    assert side["environment"]["NPY_FX_PIN"] == "avx2" and result["values"]["seen"] == "avx2"
    monkeypatch.setenv("NPY_FX_PIN", "default")
    out = run_cli(fx, "verify", "--rerun")
    assert out.exit_code == 0 and "warning: NPY_FX_PIN=default from the environment overrides the project's " \
        "NPY_FX_PIN=avx2" in out.output
    side = json.loads(next((fx.root / "artifacts" / "fx_pinned").glob("*.provenance.json")).read_text())
    assert side["environment"]["NPY_FX_PIN"] == "default"
    fx.root.joinpath("pyproject.toml").write_text(
        '[tool.claims]\nspecs = "specs"\n[tool.claims.environment]\nPATH = "/tmp"\n')
    out = run_cli(fx, "verify")
    assert out.exit_code == 2 and "[tool.claims] environment: PATH is not a variable provenance records" in out.output
    fx.root.joinpath("pyproject.toml").write_text('[tool.claims]\nspecs = "specs"\nenvironment = "MKL_CBWR=AVX2"\n')
    out = run_cli(fx, "verify")
    assert out.exit_code == 2 and "environment must be a table" in out.output


BLAS_KERNELS = '''
from claims import Estimate, Result

def run(config, ctx):
    import numpy  # noqa: F401  (loads OpenBLAS)
    from threadpoolctl import threadpool_info

    kernels = [i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"]
    return Result(estimates={"x": Estimate(value=1.0, ci=(0.5, 2.0), level=0.95, n=5, method="analytic")},
                  values={"openblas": kernels})
'''


def test_the_blas_pin_reaches_openblas_through_the_cli_and_a_late_one_is_not_recorded(fx, monkeypatch):
    """OpenBLAS reads OPENBLAS_CORETYPE when numpy loads it: `python -m claims` sets the project's
    environment before it imports anything, so the experiment's numpy runs the pinned kernels; in a
    process that loaded numpy first, activating the project leaves that pin unset (with a warning)
    instead of a sidecar that records a pin that did not hold."""
    import subprocess
    import sys

    from claims.project import Project

    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    fx.root.joinpath("pyproject.toml").write_text(
        '[tool.claims]\nspecs = "specs"\n[tool.claims.environment]\nOPENBLAS_CORETYPE = "Sandybridge"\n')
    fx.module("fx_blas", BLAS_KERNELS)
    fx.spec("blas", ONE_NODE_SPEC.format(id="blas", experiment="fx_blas"))
    out = subprocess.run([sys.executable, "-m", "claims", "--project", str(fx.root), "verify"], cwd=fx.root,
                         capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"})
    assert out.returncode == 0, out.stderr
    result = json.loads(next((fx.root / "artifacts" / "fx_blas").glob("*[0-9a-f].json")).read_text())
    assert result["values"]["openblas"] == ["Sandybridge"]
    assert "numpy" in sys.modules  # this test process: the pin would come too late, so it is not set
    Project.at(fx.root).apply_environment()
    assert "OPENBLAS_CORETYPE" not in os.environ


def test_the_cpu_kernel_pin_reaches_torch(tmp_path):
    """The pin this repository sets (README, "Large intermediates") takes effect: torch, imported after
    the project is activated, dispatches to the pinned instruction set, and the sidecar's platform
    says so."""
    import subprocess
    import sys

    (tmp_path / "specs").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.claims]\nspecs = "specs"\n[tool.claims.environment]\nATEN_CPU_CAPABILITY = "default"\n')
    code = ("import os; from claims.project import Project; Project.at(__import__('pathlib').Path(os.getcwd()))"
            ".activate(); import torch; from claims.provenance import platform_info; "
            "print(platform_info()['cpu_capability'])")
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DEFAULT"


MACHINE_MID = '''
from claims import Estimate, Result

def requires(config):
    return {"up": ("fx_blob_up", {})}

def run(config, ctx):
    m = ctx.upstream("up").result.estimates["m"].value
    return Result(estimates={"x": Estimate(value=m, ci=(0.5, 4.0), level=0.95, n=5, method="analytic")})
'''

MACHINE_TOP = '''
from claims import Estimate, Result

def requires(config):
    return {"mid": ("fx_mid", {}), "reader": ("fx_blob_down", {})}

def run(config, ctx):
    x = ctx.upstream("mid").result.estimates["x"].value
    return Result(estimates={"x": Estimate(value=x, ci=(0.5, 4.0), level=0.95, n=5, method="analytic")})
'''


def test_what_was_reused_before_an_upstream_came_back_different_runs_again(fx, monkeypatch):
    """One command: `mid` (reads only `up`'s result) is found fresh, then `reader` must rerun and needs
    `up`'s lost file, and `up` reruns at its stored key with other bits. `mid` and `top` must then
    run again on the new output, in the same command, not be reused as they were assessed before:
    afterwards every result is fresh (verify --no-run passes)."""
    import shutil

    fx.module("fx_blob_up", MACHINE_UP)
    fx.module("fx_blob_down", BLOBS_DOWN)
    fx.module("fx_mid", MACHINE_MID)
    fx.module("fx_top", MACHINE_TOP)
    fx.spec("top", ONE_NODE_SPEC.format(id="top", experiment="fx_top"))
    assert run_cli(fx, "verify").exit_code == 0
    shutil.rmtree(fx.project.cache_dir / "blobs")
    fx.module("fx_blob_down", BLOBS_DOWN + "\n# edited: the reader must run again\n")
    monkeypatch.setenv("FX_LAST_BITS", "1e-9")
    out = run_cli(fx, "verify")
    assert out.exit_code == 0, out.output
    assert "not reproduced: fx_blob_up[" in out.output
    assert "ran fx_mid[" in out.output and "ran fx_top[" in out.output
    out = run_cli(fx, "verify", "--no-run")
    assert out.exit_code == 0, out.output


def test_debris_of_killed_writes_is_removed(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    folder = fx.root / "artifacts" / "fx_mean"
    dead = folder / ".abc.json.999999999.x1y2.tmp"
    dead.write_text("half a result")
    live = folder / f".abc.json.{os.getpid()}.x1y2.tmp"
    live.write_text("being written")
    assert clean_debris(fx.root / "artifacts") == [dead]
    assert live.exists() and not dead.exists()
    dead.write_text("again")
    out = run_cli(fx, "verify")
    assert "removed debris of an interrupted write: artifacts/fx_mean/.abc.json.999999999.x1y2.tmp" in out.output
    assert not dead.exists()
    assert "*.tmp" in (Path(__file__).resolve().parents[1] / ".gitignore").read_text()


def test_a_killed_run_shows_as_interrupted(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    runner = Runner(fx.project)
    node = Node.make("fx_mean", {"shift": 1.0, "n": 200, "seed": 0, "with_ci": True})
    runner.store.write_run_record(node, {"lifecycle": [{"status": "running", "at": "2026-01-01T00:00:00+00:00"}],
                                         "pid": 999999999})
    out = run_cli(fx, "status")
    assert "interrupted (started 2026-01-01T00:00:00+00:00; killed before it finished" in out.output
    with runner.store.lock(node):  # a live run holds the lock
        out = run_cli(fx, "status")
    assert "running since 2026-01-01T00:00:00+00:00" in out.output


CKPT = '''
import os
from pathlib import Path
from claims import Estimate, Result

def run(config, ctx):
    ckpt = ctx.checkpoint("steps")
    for i in range(3):
        if i not in ckpt:
            ckpt[i] = {"i": i}
        if i == 1 and (Path(os.environ["CLAIMS_CACHE"]) / "fail-once").exists():
            (Path(os.environ["CLAIMS_CACHE"]) / "fail-once").unlink()
            raise RuntimeError("stopped after step 1")
    total = sum(ckpt[i]["i"] for i in range(3))
    return Result(estimates={"x": Estimate(value=float(total), ci=(0.5, 9.0), level=0.95, n=3, method="analytic")})
'''


def test_a_corrupt_checkpoint_step_is_named_and_rerun_discards_it(fx):
    fx.module("fx_ckpt", CKPT)
    fx.spec("ckpt", ONE_NODE_SPEC.format(id="ckpt", experiment="fx_ckpt"))
    cache = Path(os.environ["CLAIMS_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "fail-once").write_text("")
    assert run_cli(fx, "verify").exit_code == 1
    [step] = list((cache / "checkpoints").glob("*/steps/0.json"))
    step.write_bytes(b"\x00\x01{not json")
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "fx_ckpt[44136fa355b3]: checkpoint step 0 is corrupt (0.json: JSONDecodeError); run verify --rerun " \
           "to discard this node's checkpoints" in out.output
    assert run_cli(fx, "verify", "--rerun").exit_code == 0


# ---- nothing leaks ----------------------------------------------------------------------------------
def test_credentials_in_environment_values_are_redacted(mean_project, monkeypatch):
    fx = mean_project
    monkeypatch.setenv("HF_ENDPOINT", "https://alice:hunter2pass@hub.example.com/api")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example.com")
    monkeypatch.setenv("CLAIMS_HEADER", "Authorization: Bearer abcdefghijklmnop0123")
    monkeypatch.setattr("sys.argv", ["claims", "--set", "api_key=sk-should-not-appear", "verify"])
    run_cli(fx, "verify")
    text = _sidecar(fx).read_text() + (fx.root / "build" / "verify.json").read_text()
    assert "hunter2pass" not in text and "abcdefghijklmnop0123" not in text and "sk-should-not-appear" not in text
    env = json.loads(_sidecar(fx).read_text())["environment"]
    assert env["HF_ENDPOINT"] == "https://alice:<redacted>@hub.example.com/api"
    assert env["CLAIMS_HEADER"] == "Authorization: Bearer <redacted>"
    assert env["OPENAI_BASE_URL"] == "https://proxy.example.com"


def test_atomic_writes_are_world_readable(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (fx.root / "artifacts").rglob("*.json")}
    assert modes == {0o666 & ~_umask()}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- gc ---------------------------------------------------------------------------------------------
def test_gc_keeps_what_any_profile_or_set_uses_and_deletes_only_when_asked(mean_project):
    fx = mean_project
    assert run_cli(fx, "verify").exit_code == 0
    assert run_cli(fx, "--set", "n=300", "verify").exit_code == 0  # like a paper-profile run
    stored = sorted((fx.root / "artifacts" / "fx_mean").glob("*.json"))
    assert len(stored) == 8
    for args in ([], ["--set", "n=300"], ["--set", "n=400"]):
        out = run_cli(fx, *args, "gc", "--yes")
        assert out.exit_code == 0 and "nothing to delete: every stored result is used" in out.output
    assert sorted((fx.root / "artifacts" / "fx_mean").glob("*.json")) == stored
    fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=2.0))  # the shift=1.0 runs are now unused
    out = run_cli(fx, "gc")
    assert out.exit_code == 0 and out.output.count("would delete: artifacts/fx_mean/") == 2
    assert "no claim uses it, as written or under: as written, n=300" in out.output
    assert "dry run: nothing was deleted" in out.output
    assert sorted((fx.root / "artifacts" / "fx_mean").glob("*.json")) == stored
    out = run_cli(fx, "gc", "--yes")
    assert out.output.count("deleted: artifacts/fx_mean/") == 2
    assert len(list((fx.root / "artifacts" / "fx_mean").glob("*.json"))) == 4


def test_gc_keeps_results_of_blocked_claims(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=1.0) + "status: blocked\nreason: on hold\n")
    out = run_cli(fx, "gc")
    assert "nothing to delete" in out.output


def test_prose_after_the_word_token_is_not_taken_for_a_credential():
    from claims.provenance import redact_text

    assert redact_text("sized to move the next-token distributions as much") == (
        "sized to move the next-token distributions as much")
    assert redact_text("token positions matter") == "token positions matter"
    assert redact_text("Authorization: Bearer abcdefgh12345678") == "Authorization: Bearer <redacted>"


# ==== third round (issue 19) ==========================================================================
# ---- only the project's own modules are experiments ---------------------------------------------------
OUTSIDER = '''
from pathlib import Path

Path(__file__).with_name("outsider-ran").write_text("module-level code ran")

def run(config, ctx):
    Path(__file__).with_name("outsider-ran").write_text("run() ran")
'''


@pytest.mark.parametrize(("experiment", "what"), [
    ("subprocess", "'subprocess' is not an experiment of this project (it is part of Python's standard library)"),
    ("pdb", "'pdb' is not an experiment of this project (it is part of Python's standard library)"),
    ("cProfile", "'cProfile' is not an experiment of this project (it is part of Python's standard library)"),
    ("asyncio", "'asyncio' is not an experiment of this project (it is part of Python's standard library)"),
    ("os", "'os' is built into Python, not an experiment of this project"),
    ("click", "'click' is not an experiment of this project (it is an installed package)"),
    ("claims.cli", "'claims.cli' is part of the claims engine, not an experiment"),
    ("outsider", "'outsider' is not an experiment of this project (it is outside the project)"),
])
def test_only_modules_of_the_project_are_experiments(fx, tmp_path, monkeypatch, experiment, what):
    elsewhere = tmp_path / "elsewhere"  # importable, but not the project's
    elsewhere.mkdir()
    (elsewhere / "outsider.py").write_text(OUTSIDER)
    monkeypatch.syspath_prepend(str(elsewhere))
    fx.spec("odd", ONE_NODE_SPEC.format(id="odd", experiment=experiment))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1 and f"odd: specs/odd.yaml: experiment: {what}" in out.output, out.output
    assert "an experiment is a module inside the project that defines run(config, ctx)" in out.output
    assert not (elsewhere / "outsider-ran").exists() and "Traceback" not in out.output


@pytest.mark.parametrize("signature", ["def run(config):", "def run():", "def run(config, ctx, extra):"])
def test_an_experiment_run_must_take_config_and_ctx(fx, signature):
    fx.module("fx_sig", f"{signature}\n    raise SystemExit('must not be called')\n")
    fx.spec("sig", ONE_NODE_SPEC.format(id="sig", experiment="fx_sig"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1 and "specs/sig.yaml: experiment: fx_sig.run does not take (config, ctx)" in out.output


# ---- gc never deletes what an unresolvable claim may use ------------------------------------------------
@pytest.mark.parametrize(("damage", "why"), [
    ("import not_installed_pkg\n", "specs/mean-shift.yaml:4: experiment: cannot import experiment 'fx_mean' "
                                   "(no module named 'not_installed_pkg')"),
    ("raise RuntimeError('broken at import')\n", "specs/mean-shift.yaml:4: experiment: importing 'fx_mean' raised "
                                                 "RuntimeError: broken at import"),
    ("", "specs/mean-shift.yaml:4: experiment: 'fx_gone' is not an experiment"),
])
def test_gc_refuses_when_a_claim_cannot_be_resolved(mean_project, damage, why):
    fx = mean_project
    assert run_cli(fx, "verify").exit_code == 0
    stored = sorted((fx.root / "artifacts").rglob("*.json"))
    if damage:
        fx.module("fx_mean", damage + MEAN)
    else:  # the experiment now names a module outside the project
        fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=1.0).replace("experiment: fx_mean\nconfig",
                                                                                   "experiment: fx_gone\nconfig"))
        (fx.root.parent / "fx_gone.py").write_text("def run(config, ctx):\n    pass\n")
        import sys
        sys.path.append(str(fx.root.parent))
    for args in (["gc"], ["gc", "--yes"]):
        out = CliRunner().invoke(cli, ["--project", str(fx.root), *args])
        assert out.exit_code == 1, out.output
        assert "gc: refusing to list or delete anything: " in out.output
        assert "claim experiment(s) cannot be resolved, so the results they use are unknown" in out.output
        assert why in out.output and "deleted" not in out.output
    assert sorted((fx.root / "artifacts").rglob("*.json")) == stored


# ---- Ctrl-C at any moment is exit 130 -------------------------------------------------------------------
SLOW = '''
import time

def run(config, ctx):
    time.sleep(60)
'''


def _verify_in_background(fx, experiment: str, source: str):
    """`python -m claims verify` of a one-node project whose experiment is `source`, started."""
    import subprocess
    import sys

    fx.module(experiment, source)
    fx.spec("one", ONE_NODE_SPEC.format(id="one", experiment=experiment))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "claims", "--project", str(fx.root), "verify"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_running(fx, experiment: str) -> None:
    """Until the node's run record exists (its run has begun), at most a minute."""
    import time

    runs, deadline = fx.project.cache_dir / "runs" / experiment, time.monotonic() + 60
    while not (runs.is_dir() and any(runs.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.5, "running"])
def test_ctrl_c_at_any_moment_exits_130(fx, delay):
    import signal
    import time

    proc = _verify_in_background(fx, "fx_slow", SLOW)
    if delay == "running":
        _wait_until_running(fx, "fx_slow")
    else:
        time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err and "Aborted!" not in err and "interrupted" in err


LOST_CTRL_C = """
import os, signal, sys, threading, time
from claims.cli import work_begins

work_begins()
other = threading.Thread(target=time.sleep, args=(30,), daemon=True)
other.start()
if sys.argv[1] == "elsewhere":  # Python notes it there; the main thread stays asleep without the relay
    threading.Timer(0.3, signal.pthread_kill, (other.ident, signal.SIGINT)).start()
else:  # an ordinary Ctrl-C to the process
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    time.sleep(30)
except KeyboardInterrupt:
    print(f"raised after {time.monotonic() - start:.2f}s", flush=True)
try:  # a second KeyboardInterrupt for the same press would land here
    time.sleep(1.0)
except KeyboardInterrupt:
    print("raised twice", flush=True)
"""


@pytest.mark.parametrize("where", ["elsewhere", "main"])
def test_a_noted_ctrl_c_wakes_the_main_thread_once(tmp_path, where):
    """A Ctrl-C that Python notes while the main thread is already asleep in a system call (it
    arrived just before the call, or a BLAS worker took it) reaches the main thread within the
    relay's grace; an ordinary one raises once, not again when the relay looks."""
    import subprocess
    import sys

    script = tmp_path / "lost.py"
    script.write_text(LOST_CTRL_C)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(script), where], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raised after"), proc.stdout
    assert float(lines[0].split()[-1].rstrip("s")) < 5, lines


SWALLOWING = """
import time

def run(config, ctx):
    try:  # a library that drops every error, as numpy's first import of numpy.random once did
        time.sleep(30)
    except BaseException:
        pass
    for _ in ctx.progress(range(300)):
        time.sleep(0.1)
"""


def test_a_ctrl_c_that_a_library_swallows_is_raised_again(fx):
    import signal
    import time

    proc = _verify_in_background(fx, "fx_swallow", SWALLOWING)
    _wait_until_running(fx, "fx_swallow")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted fx_swallow" in err, err
    assert time.monotonic() - sent < 10  # the loop alone would take 30 s


# ---- ids name files: bounded at load time ---------------------------------------------------------------
@pytest.mark.parametrize(("claim_id", "message"), [
    ("a" * 241, "id: String should have at most 80 characters"),
    ("a" * 81, "id: String should have at most 80 characters"),
    ("a/b", "id: String should match pattern"),
    ("..", "id: String should match pattern"),
])
def test_claim_ids_are_bounded_at_load_time(tmp_path, claim_id, message):
    path = tmp_path / "long.yaml"
    path.write_text(GOOD.replace("id: good", f"id: {claim_id!r}"))
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path)
    assert message in info.value.message and "\n" not in info.value.message.strip()


# ---- no secret leaks ------------------------------------------------------------------------------------
LEAKY = '''
import os
from claims import Estimate, Result

def run(config, ctx):
    if config.get("leak") == "raise":
        raise RuntimeError(f"the judge refused key {os.environ['OPENAI_API_KEY']} (quota)")
    note = os.environ["OPENAI_API_KEY"] if config.get("leak") == "value" else "fine"
    return Result(estimates={"x": Estimate(value=1.0, ci=(0.5, 2.0), level=0.95, n=3, method="analytic")},
                  values={"note": note})
'''
SECRETS = ["sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5" * 2, "Zq8ThisIsAPlainLookingSecret42", "hf_" + "aB" * 17]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("leak", ["raise", "value"])
def test_a_secret_from_the_environment_never_reaches_a_record(fx, monkeypatch, secret, leak):
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    fx.module("fx_leaky", LEAKY)
    fx.spec("leaky", ONE_NODE_SPEC.format(id="leaky", experiment="fx_leaky").replace(
        "metric: x", f"config: {{leak: {leak}}}\nmetric: x"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1 and secret not in out.output
    if leak == "value":
        assert "returned an invalid result: .values.note holds what looks like a credential" in out.output \
            or "values.note holds what looks like a credential" in out.output, out.output
    else:
        assert "raised RuntimeError: the judge refused key <redacted> (quota)" in out.output
    written = [*(fx.root / "build").rglob("*"), *(fx.root / "artifacts").rglob("*"), *fx.project.cache_dir.rglob("*")]
    texts = [p.read_text(errors="replace") for p in written if p.is_file()]
    assert texts and not any(secret in t for t in texts)
    assert not list((fx.root / "artifacts").rglob("*.json"))  # nothing was committed


@pytest.mark.parametrize(("config", "message"), [
    ("{creds: abcdefgh}", "good.yaml:5: config: creds: looks like a secret"),
    ("{bearer: abcdefgh}", "good.yaml:5: config: bearer: looks like a secret"),
    ("{hf_auth: abcdefgh}", "good.yaml:5: config: hf_auth: looks like a secret"),
    ("{note: " + SECRETS[0] + "}", "good.yaml:5: config: note: its value looks like a credential"),
    ("{notes: [ok, " + SECRETS[2] + "]}", "good.yaml:5: config: notes[1]: its value looks like a credential"),
])
def test_credentials_in_spec_configs_are_refused(tmp_path, config, message):
    path = write(tmp_path, GOOD.replace("config: {shift: 1.0}", f"config: {config}"))
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path)
    assert message in info.value.message and SECRETS[0] not in info.value.message


@pytest.mark.parametrize("pair", [f"note={SECRETS[0]}", f"hf_auth={SECRETS[2]}", "creds=abc", "bearer=x"])
def test_credentials_in_set_are_refused_without_echoing_them(mean_project, pair):
    out = run_cli(mean_project, "--set", pair, "verify")
    assert out.exit_code == 2 and ("looks like a credential" in out.output or "looks like a secret" in out.output)
    assert pair.partition("=")[2] not in out.output and mean_project.calls("fx_mean") == 0


# ---- a full disk during verify: one line, and never a result without its sidecar --------------------------
def _verify_with_file_limit(fx, limit: int):
    import resource
    import signal
    import subprocess
    import sys

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "claims", "--project", str(fx.root), "verify"], env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=limited)


@pytest.mark.parametrize("room", ["none for the result", "none for the sidecar"])
def test_a_full_disk_during_verify_is_one_line_and_leaves_no_half_pair(mean_project, room):
    fx = mean_project
    probe = _verify_with_file_limit(fx, 10**7)  # sizes of what a run writes
    assert probe.returncode == 0, probe.stderr
    results = sorted((fx.root / "artifacts").rglob("*.json"))
    sizes = {p.name.endswith(".provenance.json"): p.stat().st_size for p in results}
    for path in [*results, *(fx.project.cache_dir / "runs").rglob("*.json")]:
        path.unlink()
    limit = sizes[False] - 1 if room == "none for the result" else (sizes[False] + sizes[True]) // 2
    assert sizes[False] < limit + 1 < sizes[True] or room == "none for the result"
    out = _verify_with_file_limit(fx, limit)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cannot write its result to artifacts/fx_mean/" in out.stdout + out.stderr
    assert "File too large (nothing was written; free space and run verify again)" in out.stdout + out.stderr
    left = sorted(p.name for p in (fx.root / "artifacts").rglob("*") if p.is_file())
    assert left == [], left  # no result without a sidecar, and no temp file


# ---- no injected markup: the bibliography, front matter links, a CSP on every page -------------------------
def _site(tmp_path, content=None, strict=False):
    from site_build import sample
    from site_build.build import build_site
    from tests.test_site import make

    project = make(tmp_path, content={**({"content/story.md": sample.CONTENT["content/story.md"] + "\nSee [@evil].\n"}),
                                      **(content or {})})
    report = build_site(project, strict=strict)
    pages = {p.relative_to(project.build_dir / "site").as_posix(): p.read_text(encoding="utf-8")
             for p in (project.build_dir / "site").rglob("*.html")}
    return project, report, pages


def _bib(fields: str) -> str:
    from site_build import sample

    return sample.BIBTEX + "\n@misc{evil,\n  " + fields + ",\n  year = {2024}\n}\n"


@pytest.mark.parametrize(("fields", "shown", "never", "warning"), [
    ("title = {<script>alert(2)</script>}, author = {Doe, Jane}", "&lt;script&gt;alert(2)&lt;/script&gt;",
     "<script>alert(2)", None),
    ("author = {<img src=x onerror=alert(3)>}, title = {T}", "&lt;img src=x onerror=alert(3)&gt;", "<img src=x", None),
    ('title = {T}, url = {https://a.b/"onmouseover="alert(4)}', None, 'onmouseover="alert(4)"',
     "content/references.bib:17: evil: url 'https://a.b/\"onmouseover=\"alert(4)' is not an http(s) address: left out"),
    ("title = {T}, url = {javascript:alert(5)}", None, "javascript:",
     "content/references.bib:17: evil: url 'javascript:alert(5)' is not an http(s) address: left out"),
])
def test_bibliography_fields_are_escaped_and_urls_checked(tmp_path, fields, shown, never, warning):
    project, report, pages = _site(tmp_path, {"content/references.bib": _bib(fields)})
    story = pages["story.html"]
    assert 'id="ref-evil"' in story
    if shown:
        assert shown in story
    assert not any(never in page for page in pages.values())
    if warning:
        assert warning in report.warnings
        with pytest.raises(BuildError):  # build-site --strict fails on it
            _site(tmp_path / "strict", {"content/references.bib": _bib(fields)}, strict=True)


def test_every_page_forbids_scripts(tmp_path):
    project, _, pages = _site(tmp_path, {"content/references.bib": _bib("title = {T}")})
    from paper_build.build import build as build_paper

    build_paper(project)
    pages["paper.html (standalone)"] = (project.build_dir / "paper" / "paper.html").read_text()
    assert len(pages) > 10
    for name, page in pages.items():  # the site runs only its own files (the search box), never inline code
        allowed = "'none'" if name == "paper.html (standalone)" else "'self'"
        assert f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src {allowed};" \
            in page, name
        assert "unsafe-inline'; " not in page.split("script-src")[1].split(";")[0], name


FRONT_TOP = "---\ntitle: A study\nrepository: https://example.org/study\n"


@pytest.mark.parametrize(("line", "message"), [
    ('commit_url: "javascript:alert(28)//{repository}/{commit}"', "content/front.md:4: commit_url: "
     "'javascript:alert(28)//{repository}/{commit}': must be {repository}/... or an http(s) address"),
    ('commit_url: "data:text/html,<script>alert(1)</script>"', "content/front.md:4: commit_url: 'data:text/html,"),
    ('commit_url: "{repository}/commit/{commit}\\" onclick=\\"x"', "content/front.md:4: commit_url: "),
    ("bibliography: /etc/passwd", "content/front.md:4: bibliography: '/etc/passwd': must be a file inside content/"),
    ("bibliography: ../../secret.bib", "content/front.md:4: bibliography: '../../secret.bib': must be a file inside"),
    ("csl: /etc/hosts", "content/front.md:4: csl: '/etc/hosts': must be a file inside content/"),
    ("bibliography: outside.bib", "content/front.md:4: bibliography: 'outside.bib' leads outside content/"),
])
def test_front_matter_links_and_paths_are_checked(tmp_path, line, message):
    from site_build import sample

    content = {"content/front.md": FRONT_TOP + line + "\n---\nThe abstract.\n",
               "content/references.bib": sample.BIBTEX}
    with pytest.raises(BuildError) as info:
        project = None
        from tests.test_site import make

        project = make(tmp_path, content=content)
        (tmp_path / "outside.bib").write_text(sample.BIBTEX)
        os.symlink(tmp_path / "outside.bib", project.content_dir / "outside.bib")
        from site_build.build import build_site

        build_site(project)
    assert message in info.value.message and "Traceback" not in info.value.message


def test_a_bib_key_defined_twice_names_both_lines(tmp_path):
    from site_build import sample

    with pytest.raises(BuildError) as info:
        _site(tmp_path, {"content/references.bib": sample.BIBTEX + sample.BIBTEX})
    assert info.value.message == ("content/references.bib:17: the key 'gao2025hneurons' is defined twice (lines 1 and "
                                  "17); give each entry its own key")


# ---- the number gate: a number made inside {{ }} counts as typed ---------------------------------------------
@pytest.mark.parametrize(("text", "found"), [
    ('Accuracy improved by {{ "73.2%" }}.', "content/page.md:2: number-without-claim: '73.2%' is made by a template"),
    ("{{ 70 + 3 }} points.", "content/page.md:2: number-without-claim: 'a number computed in the template'"),
    ('{{ claim("mean-shift").value * 100 }} percent.', "'a number computed in the template'"),
    ("{% set n = 73 %}We asked {{ n }} people.", "content/page.md:2: number-without-claim: '73' is made by"),
    ('{{ "{}".format(73) }} people.', "content/page.md:2: number-without-claim: '73' is made by"),
    ("{{ 73 | string }} people.", "content/page.md:2: number-without-claim: '73' is made by"),
])
def test_numbers_made_by_template_expressions_fail_the_gate(mean_project, text, found):
    fx = mean_project
    fx.write("content/page.md", f"# Page\n{text}\n\n{{{{ claim('mean-shift') }}}}\n")
    out = run_cli(fx, "coverage")
    assert out.exit_code == 1 and found in out.output, out.output


@pytest.mark.parametrize("text", ['{{ claim("mean-shift").value | num(2) }}', '{{ claim("mean-shift").ci[0] }}',
                                  '{{ cite("mean-shift") }}', '{% rests_on "mean-shift" %}It holds.{% endrests_on %}'])
def test_claim_fields_pass_the_gate(mean_project, git_env, text):
    from tests.conftest import git

    fx = mean_project
    fx.write("content/page.md", f"# Page\n{text}\n\n{{{{ claim('mean-shift') }}}}\n")
    git(fx.root, "init", "-q")  # the gate reads the criterion history from git
    git(fx.root, "add", "-A")
    git(fx.root, "commit", "-qm", "page")
    out = run_cli(fx, "coverage")
    assert out.exit_code == 0, out.output


def test_a_number_made_in_a_template_is_a_build_warning(tmp_path):
    from site_build import sample

    story = sample.CONTENT["content/story.md"] + '\nAccuracy improved by {{ "73.2%" }}.\n'
    _, report, _ = _site(tmp_path, {"content/story.md": story, "content/references.bib": _bib("title = {T}")})
    assert any(w.endswith("'73.2%' is made by a template expression, not read from a claim: cite a claim field "
                          "instead") and w.startswith("content/story.md:") for w in report.warnings), report.warnings


# ---- the content sandbox bounds what an expression may make ---------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("{{ 'a' * 10**9 }}", "content/page.md:3: SecurityError: str * 1000000000 is too large (at most 100,000 items)"),
    ("{{ 10**9 * 'a' }}", "content/page.md:3: SecurityError: str * 1000000000 is too large"),
    ("{{ [0] * 10**8 }}", "content/page.md:3: SecurityError: list * 100000000 is too large"),
    ("{% for i in range(10**9) %}x{% endfor %}", "content/page.md:3: OverflowError: Range too big."),
    ("{{ 7 ** (10**8) }}", "content/page.md:3: SecurityError: an exponent of 100000000 is too large (at most 64)"),
])
def test_the_content_sandbox_bounds_sizes(mean_project, text, message):
    import time

    fx = mean_project
    assert run_cli(fx, "verify").exit_code == 0
    fx.write("content/page.md", f"# Page\n\n{text}\n\n{{{{ claim('mean-shift') }}}}\n")
    started = time.monotonic()
    out = run_cli(fx, "build-site")
    assert out.exit_code == 1 and message in out.output and "Traceback" not in out.output, out.output
    assert time.monotonic() - started < 30 and not (fx.root / "build" / "site" / "page.html").exists()


# ---- figure specs: formats and reference values checked at load time ---------------------------------------
@pytest.mark.parametrize(("extra", "message"), [
    ("axis: {label: AUROC, format: '%.2f'}", "good.yaml:13: axis.format: '%.2f' is not a d3 format"),
    ("axis: {label: AUROC, format: '.2z'}", "good.yaml:13: axis.format: '.2z' is not a d3 format"),
    ("axis: {label: AUROC, format: 'percent'}", "'percent' is not a d3 format"),
    ("axis: {label: AUROC, format: '999999.2f'}", "'999999.2f': width at most 40, precision at most 20"),
    ("axis: {label: AUROC, format: '.99f'}", "'.99f': width at most 40, precision at most 20"),
    ("figure: {kind: intervals, reference: [{value: .nan}]}", "good.yaml:13: figure"),
    ("figure: {kind: intervals, reference: [{value: .inf, label: x}]}", "Input should be a finite number"),
    ("figure: [{kind: intervals, x: {label: v, format: '%d'}}]", "'%d' is not a d3 format"),
])
def test_figure_specs_are_checked_at_load_time(tmp_path, extra, message):
    path = write(tmp_path, GOOD + extra + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, tmp_path)
    assert message in info.value.message, info.value.message
    assert "\n" not in info.value.message.strip()


@pytest.mark.parametrize("fmt", [".2f", "+.0f", ".0%", ",.3~g", "$,.2f", " >10.1e", "d", ""])
def test_good_d3_formats_load(tmp_path, fmt):
    load_spec(write(tmp_path, GOOD + f"axis: {{label: AUROC, format: '{fmt}'}}\n"), tmp_path)


# ---- --ray-address at a port that is not Ray: a bounded handshake, one line -----------------------------------
def _serve(behaviour: str):
    """A TCP server on a free port that accepts and then: says nothing, speaks HTTP/1.1, or hangs up."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if behaviour == "http1":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            if behaviour == "hangs up":
                conn.close()
            else:
                held.append(conn)

    threading.Thread(target=loop, daemon=True).start()
    return server


@pytest.mark.parametrize(("behaviour", "why"), [
    ("silent", "no HTTP/2 handshake within 5 s"),
    ("http1", "it replied b'HTTP/1.1 ', not an HTTP/2 SETTINGS frame"),
    ("hangs up", "it closed the connection at the HTTP/2 handshake"),
])
def test_a_ray_address_that_is_not_ray_fails_within_seconds(mean_project, behaviour, why):
    import time

    server = _serve(behaviour)
    address = f"127.0.0.1:{server.getsockname()[1]}"
    started = time.monotonic()
    try:
        out = run_cli(mean_project, "verify", "--executor", "ray", "--ray-address", address)
    finally:
        server.close()
    assert time.monotonic() - started < 20
    assert out.exit_code == 2 and f"Error: {address} answers, but not as a Ray cluster ({why})" in out.output, out.output
    assert "Traceback" not in out.output and mean_project.calls("fx_mean") == 0


def test_the_ray_handshake_accepts_an_http2_server():
    """Ray's GCS is a gRPC server, so HTTP/2: a server that answers the preface with its SETTINGS
    frame (as every HTTP/2 server must, RFC 9113 3.4) passes the probe."""
    import socket
    import threading

    from claims.executor.cluster import probe

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame

    threading.Thread(target=answer, daemon=True).start()
    try:
        probe(f"127.0.0.1:{server.getsockname()[1]}")  # no error
    finally:
        server.close()


# ---- the cached model: a flipped byte with its mtime restored is caught when the weights load ------------------
# The fix edits pipeline/models/embedded.py, which every experiment on the embedded model imports: it
# changed their code fingerprint, and it landed with the studies' reruns on this machine.
@pytest.mark.parametrize(("damage", "intact"), [
    ("none", True),
    ("flip a weight byte, restore mtime", False),
    ("flip a header byte, restore mtime", False),
    ("append a byte", False),
])
def test_the_model_cache_content_is_checked_when_loaded(tmp_path, damage, intact):
    import numpy as np
    from safetensors.numpy import save_file

    from pipeline.models.embedded import MARKER, content_intact, weights_digest

    folder = tmp_path / "gemma3-270m"
    folder.mkdir()
    weights = folder / "model.safetensors"
    save_file({"w": np.arange(4096, dtype=np.float32)}, str(weights))
    (folder / MARKER).write_text(json.dumps({"dequantized_sha256": weights_digest(folder)}))
    memo = weights_digest(folder)
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    if damage.startswith("flip"):
        data[-100 if "weight" in damage else 20] ^= 0x01
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert weights_digest(folder) == memo  # the (size, mtime) memo cannot see it
    elif damage == "append a byte":
        weights.write_bytes(bytes(data) + b"\0")
    assert content_intact(folder) is intact
    assert (weights_digest(folder) == memo) is intact  # the fresh hash refreshed the memo
