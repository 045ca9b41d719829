"""Run-or-reuse, provenance, tamper detection, failures, resume and concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.node import Node
from claims.runner import Runner
from claims.spec import load_specs
from claims.verify import verify
from tests.conftest import MEAN, MEAN_SPEC


def run_cli(fx, *args):
    result = CliRunner().invoke(cli, ["--project", str(fx.root), *args], catch_exceptions=False)
    return result


def result_file_of(fx, experiment):
    files = [p for p in (fx.root / "artifacts" / experiment).glob("*.json") if ".provenance" not in p.name]
    return sorted(files)[0]


def check(fx, **kw):
    project = fx.project
    outcomes, runner = verify(project, load_specs(project.specs_dir, project.root), **kw)
    return {o.id: o for o in outcomes}, runner


def test_verify_runs_then_reuses(mean_project):
    fx = mean_project
    first = run_cli(fx, "verify")
    assert first.exit_code == 0, first.output
    assert "mean-shift" in first.output and "verified" in first.output
    assert fx.calls("fx_mean") == 2  # claim and control configs differ: two runs
    report = json.loads((fx.root / "build" / "verify.json").read_text())
    claim = report["claims"][0]
    assert claim["status"] == "verified" and claim["ci"][0] < claim["value"] < claim["ci"][1]
    assert claim["statement"].startswith("The mean is ") and "95% CI" in claim["statement"]
    second = run_cli(fx, "verify")
    assert second.exit_code == 0
    assert fx.calls("fx_mean") == 2  # nothing reran
    assert "ran 0, reused 2" in second.output


def test_shared_node_runs_once(fx):
    fx.module("fx_mean", MEAN)
    fx.spec("a", MEAN_SPEC.format(id="a", shift=1.0))
    fx.spec("b", MEAN_SPEC.format(id="b", shift=1.0).replace("Mean shift", "Same run, other claim"))
    outcomes, runner = check(fx)
    assert {o.status for o in outcomes.values()} == {"verified"}
    assert fx.calls("fx_mean") == 2  # a and b share both nodes


@pytest.mark.parametrize(
    ("change", "why", "up_runs", "down_runs"),
    [
        ("downstream code", "code changed: fx_down.py", 1, 2),
        ("upstream code, same output", "upstream 'data' is stale", 2, 1),
        ("config", "missing", 1, 2),
        ("input", "upstream 'data' is stale", 2, 2),
    ],
)
def test_change_makes_stale_and_reruns(fx, change, why, up_runs, down_runs):
    fx.module("fx_up", UPSTREAM)
    fx.module("fx_down", DOWNSTREAM)
    fx.write("data/input.txt", "1 2 3\n")
    fx.spec("down", DOWN_SPEC)
    outcomes, _ = check(fx)
    assert outcomes["down"].status == "verified", outcomes["down"].problems
    assert (fx.calls("fx_up"), fx.calls("fx_down")) == (1, 1)
    if change == "downstream code":
        fx.module("fx_down", DOWNSTREAM.replace("# tweak", "# tweaked"))
    elif change.startswith("upstream code"):
        fx.module("fx_up", UPSTREAM.replace("# tweak", "# tweaked: same numbers, new code"))
    elif change == "config":
        fx.spec("down", DOWN_SPEC.replace("scale: 2", "scale: 3"))
    else:
        fx.write("data/input.txt", "1 2 3 4\n")
    stale, _ = check(fx, run=False)
    assert stale["down"].status == "stale"
    assert why in " ".join(stale["down"].problems)
    outcomes, runner = check(fx)
    assert outcomes["down"].status == "verified"
    # an upstream rerun with identical output leaves downstream fresh (its key reads outputs)
    assert (fx.calls("fx_up"), fx.calls("fx_down")) == (up_runs, down_runs)


def test_status_says_why(fx):
    fx.module("fx_up", UPSTREAM)
    fx.module("fx_down", DOWNSTREAM)
    fx.write("data/input.txt", "1 2 3\n")
    fx.spec("down", DOWN_SPEC)
    check(fx)
    fx.module("fx_up", UPSTREAM.replace("# tweak", "# changed"))
    out = run_cli(fx, "status")
    assert out.exit_code == 1
    assert "code changed: fx_up.py" in out.output
    assert "upstream 'data' is stale" in out.output


def test_tampered_artifact_is_detected_and_never_reused(mean_project):
    fx = mean_project
    check(fx)
    result_file = result_file_of(fx, "fx_mean")
    data = json.loads(result_file.read_text())
    data["estimates"]["mean"]["value"] = 99.9
    result_file.write_text(json.dumps(data))
    outcomes, _ = check(fx, run=False)
    assert outcomes["mean-shift"].status == "stale"
    assert any("does not match its sidecar hash" in p for p in outcomes["mean-shift"].problems)
    assert run_cli(fx, "verify", "--no-run").exit_code == 1
    outcomes, runner = check(fx)  # a run repairs it
    assert outcomes["mean-shift"].status == "verified"
    assert outcomes["mean-shift"].value != 99.9


def test_truncated_artifact_is_detected(mean_project):
    fx = mean_project
    check(fx)
    result_file = result_file_of(fx, "fx_mean")
    result_file.write_bytes(result_file.read_bytes()[:40])
    outcomes, _ = check(fx, run=False)
    assert outcomes["mean-shift"].status == "stale"


def test_experiment_that_raises_leaves_no_artifact(fx):
    fx.module("fx_boom", "def run(config, ctx):\n    raise ValueError('the data went missing')\n")
    fx.spec("boom", NO_CONTROL_SPEC.format(id="boom", experiment="fx_boom"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "fx_boom" in out.output and "ValueError: the data went missing" in out.output
    assert "Traceback" not in out.output
    assert not (fx.root / "artifacts" / "fx_boom").exists()
    runner = Runner(fx.project)
    record = runner.store.read_run_record(Node.make("fx_boom", {}))
    assert [s["status"] for s in record["lifecycle"]] == ["running", "failed"]
    assert "the data went missing" in record["lifecycle"][-1]["error"]


def test_missing_module_is_a_clear_error(fx):
    fx.spec("ghost", NO_CONTROL_SPEC.format(id="ghost", experiment="fx_does_not_exist"))
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "specs/ghost.yaml: experiment: cannot import experiment 'fx_does_not_exist'" in out.output


def test_module_without_run(fx):
    fx.module("fx_norun", "X = 1\n")
    fx.spec("norun", NO_CONTROL_SPEC.format(id="norun", experiment="fx_norun"))
    outcomes, _ = check(fx)
    assert outcomes["norun"].status == "error"
    assert "does not expose run(config, ctx)" in outcomes["norun"].problems[0]


def test_failing_control_fails_the_claim(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift=0.05))  # too small to beat the control at n=200
    outcomes, _ = check(fx)
    o = outcomes["mean-shift"]
    assert o.status == "failed"
    assert o.control["holds"] is False
    assert "control assertion is false" in " ".join(o.problems)
    assert run_cli(fx, "verify").exit_code == 1


def test_claim_without_interval_fails(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift="1.0, with_ci: false"))
    outcomes, _ = check(fx)
    o = outcomes["mean-shift"]
    assert o.status == "failed"
    assert any("has no interval" in p for p in o.problems)


def test_wrong_level_fails(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift=1.0).replace("level: 0.95", "level: 0.99"))
    outcomes, _ = check(fx)
    assert any("level is 0.95, the spec asks 0.99" in p for p in outcomes["mean-shift"].problems)


def test_hand_typed_number_in_statement_fails(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift=1.0).replace("The mean is", "Across 200 draws the mean is"))
    outcomes, _ = check(fx)
    assert any("hand-typed numbers ['200']" in p for p in outcomes["mean-shift"].problems)


def test_unknown_name_in_assert_is_named(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift=1.0).replace('"mean_ci[0] > 0"', '"mean_cj[0] > 0"'))
    outcomes, _ = check(fx)
    problem = " ".join(outcomes["mean-shift"].problems)
    assert "unknown name 'mean_cj' (did you mean 'mean_ci'?)" in problem


def test_blocked_claim_is_listed_with_reason(mean_project):
    fx = mean_project
    fx.spec("later", "id: later\ntitle: Later\nstatement: Not yet.\nstatus: blocked\n"
                     "reason: needs the GPU profile\nexperiment: fx_mean\nmetric: mean\nkind: count\n"
                     "control: none\nwhy_no_control: blocked\n")
    out = run_cli(fx, "verify")
    assert out.exit_code == 0
    assert "blocked: needs the GPU profile" in out.output


def test_a_failed_dependency_blocks_its_dependants_transitively(mean_project):
    fx = mean_project
    fx.spec("mean-shift", MEAN_SPEC_FMT(shift=0.05))
    fx.spec("second", MEAN_SPEC.format(id="second", shift=2.0) + "depends_on: [mean-shift]\n")
    fx.spec("third", MEAN_SPEC.format(id="third", shift=3.0) + "depends_on: [second]\n")
    outcomes, _ = check(fx)
    assert outcomes["mean-shift"].status == "failed"
    assert outcomes["second"].status == "blocked" and outcomes["second"].blocked_by == ["mean-shift"]
    assert outcomes["second"].reason == "depends on 'mean-shift' (failed)"
    assert outcomes["third"].status == "blocked" and outcomes["third"].blocked_by == ["mean-shift"]
    assert outcomes["third"].reason == "depends on 'second' (blocked, by 'mean-shift' failed)"
    out = run_cli(fx, "verify")
    assert out.exit_code == 1
    assert "third: blocked: depends on 'second' (blocked, by 'mean-shift' failed)" in out.output
    assert "(2 blocked by a dependency that does not stand)" in out.output


def test_only_selects_and_unknown_id_is_usage_error(mean_project):
    fx = mean_project
    assert run_cli(fx, "verify", "--only", "mean-shift").exit_code == 0
    out = run_cli(fx, "verify", "--only", "nope")
    assert out.exit_code == 2 and "unknown claim id(s): nope" in out.output


def test_no_run_fails_on_missing(mean_project):
    out = run_cli(mean_project, "verify", "--no-run")
    assert out.exit_code == 1
    assert "stale" in out.output
    assert mean_project.calls("fx_mean") == 0


def test_rerun_forces(mean_project):
    fx = mean_project
    run_cli(fx, "verify")
    run_cli(fx, "verify", "--rerun")
    assert fx.calls("fx_mean") == 4


def test_interrupted_run_resumes_to_the_same_result(fx, monkeypatch):
    fx.module("fx_steps", STEPS)
    fx.spec("steps", NO_CONTROL_SPEC.format(id="steps", experiment="fx_steps"))
    marker = Path(os.environ["CLAIMS_CACHE"]) / "interrupt-at-3"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    with pytest.raises(KeyboardInterrupt):
        check(fx)
    runner = Runner(fx.project)
    node = Node.make("fx_steps", {})
    assert runner.store.read(node) is None  # nothing that looks complete
    assert runner.store.read_run_record(node)["lifecycle"][-1]["status"] == "interrupted"
    outcomes, _ = check(fx)
    resumed = outcomes["steps"]
    assert resumed.status == "verified", resumed.problems
    work = (Path(os.environ["CLAIMS_CACHE"]) / "steps-done").read_text().split()
    assert work == [str(i) for i in range(3)] + [str(i) for i in range(3, 10)]  # no step done twice
    # an uninterrupted run in a fresh cache gives the same numbers
    monkeypatch.setenv("CLAIMS_CACHE", str(Path(os.environ["CLAIMS_CACHE"]).parent / "fresh-cache"))
    (fx.root / "artifacts").rename(fx.root / "artifacts-resumed")
    outcomes, _ = check(fx)
    assert outcomes["steps"].value == resumed.value and outcomes["steps"].ci == resumed.ci


def test_partial_work_made_under_other_kernels_is_discarded_not_resumed(fx, monkeypatch):
    """A checkpoint left by an interrupted run under other CPU-kernel settings (another machine, or
    before a pin) is not stitched into this run's result: it is discarded with one line and every
    step runs again; one made under the same settings resumes."""
    fx.module("fx_steps", STEPS)
    fx.spec("steps", NO_CONTROL_SPEC.format(id="steps", experiment="fx_steps"))
    done = Path(os.environ["CLAIMS_CACHE"]) / "steps-done"
    marker = Path(os.environ["CLAIMS_CACHE"]) / "interrupt-at-3"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    with pytest.raises(KeyboardInterrupt):
        check(fx)
    monkeypatch.setenv("MKL_CBWR", "AVX2,STRICT")  # the pin changed before the run resumed
    out = run_cli(fx, "verify")
    assert out.exit_code == 0, out.output
    assert "fx_steps[" in out.output and "its partial work was made on" in out.output
    assert "MKL_CBWR=COMPATIBLE" in out.output and "discarded, not resumed" in out.output
    assert done.read_text().split() == [str(i) for i in range(3)] + [str(i) for i in range(10)]  # all again


def test_concurrent_verify_runs_do_not_corrupt(fx):
    fx.module("fx_slow", SLOW)
    fx.spec("slow", NO_CONTROL_SPEC.format(id="slow", experiment="fx_slow"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "claims", "--project", str(fx.root), "verify"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert fx.calls("fx_slow") == 1  # one ran, the other waited and reused
    assert any("made by another run" in o for o in outputs)
    outcomes, _ = check(fx, run=False)
    assert outcomes["slow"].status == "verified"


def test_sidecar_has_provenance_without_secrets_or_paths(mean_project, monkeypatch):
    fx = mean_project
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdefghijklmnopqrstuvwxyz0123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv("CLAIMS_TORCH_THREADS", "2")
    monkeypatch.setattr("sys.argv", ["claims", "verify", "--api-key", "sk-argv-abcdefghijklmnopqrstuvwxyz012345"])
    check(fx)
    sidecar_file = next((fx.root / "artifacts" / "fx_mean").glob("*.provenance.json"))
    text = sidecar_file.read_text()
    sidecar = json.loads(text)
    assert "sk-live" not in text and "hf_abcdef" not in text
    assert sidecar["environment"]["OPENAI_API_KEY"] == "<redacted>"
    assert sidecar["environment"]["CLAIMS_TORCH_THREADS"] == "2"
    assert str(fx.root) not in text and os.environ["CLAIMS_CACHE"] not in text
    assert str(Path.home()) + "/" not in text
    for field in ("experiment", "config", "key", "code_hash", "packages", "seed", "wall_time_s", "git", "output"):
        assert field in sidecar
    assert sidecar["key_material"]["code"] == {"fx_mean.py": sidecar["key_material"]["code"]["fx_mean.py"]}
    assert [s["status"] for s in sidecar["lifecycle"]] == ["running", "completed"]
    assert sidecar["argv"] == ["claims", "verify", "--api-key", "<redacted>"]
    assert "sk-argv" not in text


def test_generation_settings_are_fingerprinted(fx):
    fx.module("fx_gen", GEN)
    fx.spec("gen", NO_CONTROL_SPEC.format(id="gen", experiment="fx_gen"))
    check(fx)
    sidecar = json.loads(next((fx.root / "artifacts" / "fx_gen").glob("*.provenance.json")).read_text())
    assert sidecar["recorded"]["generation"] == {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8}
    assert len(sidecar["fingerprints"]["generation"]) == 16


def MEAN_SPEC_FMT(shift):
    return MEAN_SPEC.format(id="mean-shift", shift=shift)


NO_CONTROL_SPEC = """
id: {id}
title: Fixture
statement: The value is {{value:.3f}} ({{value_ci[0]:.3f}} to {{value_ci[1]:.3f}}).
experiment: {experiment}
metric: value
uncertainty: {{method: analytic, level: 0.95}}
assert: "value_ci[0] > 0"
control: none
why_no_control: an engine fixture
"""

UPSTREAM = '''
import os
from pathlib import Path

import numpy as np

from claims import Result

ROOT = Path(__file__).parent


def inputs(config):
    from claims.provenance import sha256_file
    return {"data": sha256_file(ROOT / "data" / "input.txt")}


def run(config, ctx):
    calls = Path(os.environ["CLAIMS_CACHE"]) / "calls" / "fx_up"
    calls.parent.mkdir(parents=True, exist_ok=True)
    calls.open("a").write("x")
    numbers = np.array([float(x) for x in (ROOT / "data" / "input.txt").read_text().split()])
    ctx.save_arrays("numbers", x=numbers)  # tweak
    return Result(values={"count": len(numbers)})
'''

DOWNSTREAM = '''
import os
from pathlib import Path

from claims import Estimate, Result


def requires(config):
    return {"data": ("fx_up", {})}


def run(config, ctx):
    calls = Path(os.environ["CLAIMS_CACHE"]) / "calls" / "fx_down"
    calls.parent.mkdir(parents=True, exist_ok=True)
    calls.open("a").write("x")
    x = ctx.upstream("data").arrays("numbers")["x"] * config["scale"]  # tweak
    est = Estimate(value=float(x.mean()), ci=(float(x.min()), float(x.max())), level=0.95, n=len(x),
                   method="analytic-range")
    return Result(estimates={"value": est})
'''

DOWN_SPEC = """
id: down
title: Downstream
statement: The scaled mean is {value:.2f} ({value_ci[0]:.2f} to {value_ci[1]:.2f}).
experiment: fx_down
config: {scale: 2}
metric: value
uncertainty: {method: analytic, level: 0.95}
assert: "value > 0"
control: none
why_no_control: an engine fixture
"""

STEPS = '''
import os
from pathlib import Path

from claims import Estimate, Result


def run(config, ctx):
    cache = Path(os.environ["CLAIMS_CACHE"])
    ckpt = ctx.checkpoint("steps")
    values = []
    for i in range(10):
        if i not in ckpt:
            marker = cache / f"interrupt-at-{i}"
            if marker.exists():
                marker.unlink()
                raise KeyboardInterrupt
            ckpt[i] = {"value": float(ctx.rng.normal()) if False else i * 0.5}
            with open(cache / "steps-done", "a") as f:
                f.write(f"{i} ")
        values.append(ckpt[i]["value"])
    mean = sum(values) / len(values)
    return Result(estimates={"value": Estimate(value=mean, ci=(min(values) + 0.1, max(values)), level=0.95,
                                               n=len(values), method="analytic-range")})
'''

SLOW = '''
import os
import time
from pathlib import Path

from claims import Estimate, Result


def run(config, ctx):
    calls = Path(os.environ["CLAIMS_CACHE"]) / "calls" / "fx_slow"
    calls.parent.mkdir(parents=True, exist_ok=True)
    calls.open("a").write("x")
    time.sleep(2.0)
    return Result(estimates={"value": Estimate(value=1.0, ci=(0.5, 1.5), level=0.95, n=3, method="analytic")})
'''

GEN = '''
from claims import Estimate, Result


def run(config, ctx):
    ctx.record(generation={"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 8})
    return Result(estimates={"value": Estimate(value=1.0, ci=(0.5, 1.5), level=0.95, n=3, method="analytic")})
'''


def test_cli_reports_an_interruption_and_exits_130(fx):
    fx.module("fx_steps", STEPS)
    fx.spec("steps", NO_CONTROL_SPEC.format(id="steps", experiment="fx_steps"))
    marker = Path(os.environ["CLAIMS_CACHE"]) / "interrupt-at-2"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    result = CliRunner().invoke(cli, ["--project", str(fx.root), "verify"])
    assert result.exit_code == 130
    assert "interrupted: finished results are kept" in result.output
    assert "Traceback" not in result.output
    assert run_cli(fx, "verify").exit_code == 0  # resumes


def test_set_overrides_claim_and_control_configs(mean_project):
    fx = mean_project
    assert run_cli(fx, "verify").exit_code == 0
    result = CliRunner().invoke(cli, ["--project", str(fx.root), "--set", "n=50", "verify"])
    assert result.exit_code == 0, result.output
    assert fx.calls("fx_mean") == 4  # both configs changed: two new runs beside the two old ones
    report = json.loads((fx.root / "build" / "verify.json").read_text())
    assert report["claims"][0]["n"] == 50
    assert report["claims"][0]["nodes"]["control"]["config"]["n"] == 50
