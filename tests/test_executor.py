"""Executors without Ray: sweep units on the local executor, resources, the tally, debris across hosts,
the lifecycle of a killed run, and the one-line errors of --executor / --ray-address."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.errors import ExperimentError
from claims.experiment import declared_resources, declared_units, unit_id
from claims.node import Node
from claims.progress import Tally
from claims.resources import Resources, parse_bytes
from claims.runner import Runner
from claims.spec import load_specs
from claims.store import HOST_TAG, clean_debris, temp_file
from claims.verify import verify
from tests.test_engine import NO_CONTROL_SPEC

# A real sweep on the tiny model: scale k random FFN neurons (drawn per unit) by alpha and read the
# next-token entropy. Units are alphas x seeds; each unit logs "alpha,seed,pid" to $CLAIMS_CACHE/units.
SWEEP = '''
import os
import signal
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from claims import Estimate, Result

RESOURCES = {"num_cpus": 1}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alphas: list[float] = [0.0, 1.0, 2.0]
    seeds: int = 2
    k: int = 16
    seed: int = 0


def inputs(config):
    from pipeline.models import fingerprint
    return {"model": fingerprint("tiny")}


def units(config):
    return [{"alpha": a, "seed": s} for a in config["alphas"] for s in range(config["seeds"])]


def run_unit(config, unit, ctx):
    import torch
    from claims.store import temp_file
    from pipeline.interventions import scale_neurons
    from pipeline.models import load

    cache = Path(os.environ["CLAIMS_CACHE"])
    name = f"{unit['alpha']}-{unit['seed']}"
    if (cache / f"fail-{name}").exists():
        (cache / f"fail-{name}").unlink()
        raise RuntimeError(f"unit {name} failed once")
    if (cache / f"kill-{name}").exists():  # a worker killed mid-write of its blob
        (cache / f"kill-{name}").unlink()
        fd, _ = temp_file(cache, "outputs.npz")
        os.write(fd, b"PK\\x03\\x04 half a zip")
        os.kill(os.getpid(), signal.SIGKILL)
    lm = load("tiny")
    draw = np.random.default_rng([config["seed"], unit["seed"]])  # one neuron set per seed, at every alpha
    neurons = sorted(draw.choice(lm.d_ffn, size=config["k"], replace=False).tolist())
    ids = torch.tensor([[2, *range(10, 40)]])
    with torch.no_grad(), scale_neurons(lm, {0: neurons, 1: neurons}, unit["alpha"]):
        logits = lm.model(ids).logits[0, -1].double()
    p = torch.softmax(logits, -1)
    with open(cache / "units", "a") as f:
        f.write(f"{name},{os.getpid()}\\n")
    return {"entropy": float(-(p * p.log()).sum()), "top": int(logits.argmax()), "neurons": neurons,
            "noise": float(ctx.rng.normal())}  # ctx.rng: seeded by (seed, unit)


def run(config, ctx):
    rows = ctx.unit_results()
    entropy = np.array([r["entropy"] for r in rows])
    est = Estimate(value=float(entropy.mean()), ci=(float(entropy.min()), float(entropy.max())), level=0.95,
                   n=len(rows), method="analytic-range")
    ctx.save_arrays("entropy", x=entropy)
    return Result(estimates={"value": est}, values={"rows": rows})
'''


def sweep_project(fx, **config):
    fx.module("fx_sweep", SWEEP)
    spec = NO_CONTROL_SPEC.format(id="sweep", experiment="fx_sweep")
    fx.spec("sweep", spec + (f"config: {json.dumps(config)}\n" if config else ""))
    return fx


def unit_log(fx) -> list[str]:
    path = fx.project.cache_dir / "units"
    return [line.split(",")[0] for line in path.read_text().split()] if path.exists() else []


def check(fx, **kw):
    project = fx.project
    outcomes, runner = verify(project, load_specs(project.specs_dir, project.root), **kw)
    return {o.id: o for o in outcomes}, runner


def result_bytes(fx, experiment: str) -> dict[str, bytes]:
    folder = fx.root / "artifacts" / experiment
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json")) if ".provenance" not in p.name}


# ---- sweep units on the local executor ------------------------------------------------------------
def test_units_run_in_order_and_a_failed_unit_is_all_that_reruns(fx):
    sweep_project(fx)
    cache = fx.project.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "fail-2.0-0").write_text("")
    outcomes, _ = check(fx)
    assert outcomes["sweep"].status == "error"
    assert "RuntimeError: unit 2.0-0 failed once" in outcomes["sweep"].problems[0]
    assert unit_log(fx) == ["0.0-0", "0.0-1", "1.0-0", "1.0-1"]  # finished units are checkpointed
    outcomes, _ = check(fx)
    assert outcomes["sweep"].status == "verified", outcomes["sweep"].problems
    assert unit_log(fx) == ["0.0-0", "0.0-1", "1.0-0", "1.0-1", "2.0-0", "2.0-1"]  # no unit twice
    rows = json.loads(next(iter(result_bytes(fx, "fx_sweep").values())))["values"]["rows"]
    assert len(rows) == 6 and rows[0]["neurons"] != rows[1]["neurons"]  # seeds 0 and 1 draw their own neurons
    assert rows[0]["neurons"] == rows[2]["neurons"]  # seed 0 at alpha 0 and at alpha 1: the same set
    assert rows[0]["entropy"] != rows[2]["entropy"] and len({r["noise"] for r in rows}) == 6  # ctx.rng per unit
    assert not (cache / "checkpoints").exists() or not any((cache / "checkpoints").iterdir())


def test_a_unit_gives_the_same_numbers_alone_or_in_any_order(fx, monkeypatch):
    sweep_project(fx)
    check(fx)
    whole = json.loads(next(iter(result_bytes(fx, "fx_sweep").values())))["values"]["rows"]
    monkeypatch.setenv("CLAIMS_CACHE", str(fx.root.parent / "other-cache"))
    (fx.root / "artifacts").rename(fx.root / "artifacts-first")
    sweep_project(fx, alphas=[2.0, 0.0], seeds=2)  # other units, other order
    check(fx)
    part = json.loads(next(iter(result_bytes(fx, "fx_sweep").values())))["values"]["rows"]
    assert part == [whole[4], whole[5], whole[0], whole[1]]


@pytest.mark.parametrize(("module", "message"), [
    ("def units(config):\n    return [1]\ndef run(config, ctx):\n    pass\n",
     "declares units() but no run_unit(config, unit, ctx)"),
    ("def units(config):\n    return {'a': 1}\ndef run_unit(c, u, ctx):\n    pass\ndef run(config, ctx):\n    pass\n",
     "units() must return a list, not dict"),
    ("def units(config):\n    return [{'a': 1}, {'a': 1}]\ndef run_unit(c, u, ctx):\n    pass\n"
     "def run(config, ctx):\n    pass\n", "units() lists {'a': 1} twice"),
    ("def units(config):\n    return [object()]\ndef run_unit(c, u, ctx):\n    pass\ndef run(config, ctx):\n    pass\n",
     "is not plain JSON data"),
])
def test_bad_unit_declarations_are_named(fx, module, message):
    fx.module("fx_badunits", module)
    fx.project.activate()
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        declared_units(Node.make("fx_badunits", {}))


def test_a_unit_returns_data_and_cannot_save_files(fx):
    fx.module("fx_saver", "import numpy as np\ndef units(config):\n    return [0]\n"
                          "def run_unit(config, unit, ctx):\n    ctx.save_arrays('x', x=np.zeros(2))\n"
                          "def run(config, ctx):\n    ctx.unit_results()\n")
    fx.spec("saver", NO_CONTROL_SPEC.format(id="saver", experiment="fx_saver"))
    outcomes, _ = check(fx)
    assert "run_unit cannot save files; a unit returns its data" in outcomes["saver"].problems[0]
    assert unit_id({"alpha": 1.0}) == unit_id({"alpha": 1.0}) != unit_id({"alpha": 2.0})


# ---- resources ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("declaration", "expected"), [
    ("", Resources()),
    ("RESOURCES = {'num_gpus': 1, 'memory': '24GB'}", Resources(num_gpus=1, memory=24 * 10**9)),
    ("def resources(config):\n    return {'num_gpus': 1} if config.get('profile') == 'paper' else {'num_cpus': 2}",
     Resources(num_cpus=2)),
])
def test_a_module_declares_what_a_task_needs(fx, declaration, expected):
    fx.module("fx_needs", declaration + "\ndef run(config, ctx):\n    pass\n")
    fx.project.activate()
    assert declared_resources(Node.make("fx_needs", {})) == expected


@pytest.mark.parametrize(("declaration", "message"), [
    ("RESOURCES = 2", "fx_needs[44136fa355b3]: RESOURCES: must be a mapping such as"),
    ("RESOURCES = {'gpus': 1}", "RESOURCES.gpus: unknown field (use num_cpus, num_gpus, memory)"),
    ("RESOURCES = {'memory': 'lots'}", "RESOURCES.memory: memory 'lots' is not a size such as 16GB"),
    ("RESOURCES = {'num_cpus': -1}", "RESOURCES.num_cpus: Input should be greater than or equal to 0"),
    ("def resources(config):\n    return 1 / 0", "resources() raised ZeroDivisionError: division by zero"),
])
def test_bad_resources_are_one_clear_line(fx, declaration, message):
    fx.module("fx_needs", declaration + "\ndef run(config, ctx):\n    pass\n")
    fx.project.activate()
    with pytest.raises(ExperimentError) as info:
        declared_resources(Node.make("fx_needs", {}))
    assert message in info.value.message


def test_a_claim_overrides_its_module_and_two_claims_get_the_wider():
    module = Resources(num_cpus=2, memory=10**9)
    claim = Resources.model_validate({"num_gpus": 1})
    assert claim.over(module) == Resources(num_cpus=2, num_gpus=1, memory=10**9)
    assert module.widest(Resources(num_cpus=1, memory=2 * 10**9)) == Resources(num_cpus=2, memory=2 * 10**9)
    assert [parse_bytes(x) for x in ("16GB", "1.5 GiB", "512MiB", 1000)] == [16 * 10**9, 3 * 2**29, 2**29, 1000]
    assert claim.over(module).ray_options() == {"num_cpus": 2, "num_gpus": 1, "memory": 10**9}


def test_a_spec_with_bad_resources_names_file_and_field(mean_project):
    fx = mean_project
    path = fx.spec("mean-shift", (fx.root / "specs" / "mean-shift.yaml").read_text() + "resources: {cpus: 2}\n")
    out = CliRunner().invoke(cli, ["--project", str(fx.root), "verify", "--no-run"])
    assert out.exit_code == 2
    assert f"specs/{path.name}:" in out.output and "resources.cpus" in out.output


# ---- tally, debris, lifecycle ---------------------------------------------------------------------
def test_tally_logs_a_line_when_a_task_finishes(capsys):
    tally = Tally("ray")
    tally.add(waiting=3, show=False)
    tally.add(waiting=-1, running=1)  # a start: no line in a log
    tally.add(running=-1, done=1)
    tally.add(reused=1)
    assert capsys.readouterr().err.splitlines() == [
        "ray: 1 done, 0 running, 0 failed, 0 reused, 2 waiting",
        "ray: 1 done, 0 running, 0 failed, 1 reused, 2 waiting"]


def test_debris_of_another_host_is_left_alone(tmp_path):
    fd, mine = temp_file(tmp_path, "x.json")
    os.close(fd)
    assert f".{os.getpid()}-{HOST_TAG}." in Path(mine).name and socket.gethostname() not in mine
    dead_here = tmp_path / f".a.json.999999999-{HOST_TAG}.abc.tmp"
    dead_elsewhere = tmp_path / ".a.json.999999999-0badc0de.abc.tmp"  # its pid means nothing here
    for path in (dead_here, dead_elsewhere):
        path.write_text("half")
    assert clean_debris(tmp_path) == [dead_here]
    assert dead_elsewhere.exists() and Path(mine).exists()


def test_a_run_after_a_killed_one_records_the_kill(mean_project):
    fx = mean_project
    outcomes, runner = check(fx)
    node = Node.make("fx_mean", {"shift": 1.0, "n": 200, "seed": 0, "with_ci": True})
    key = runner.assess(node).key
    runner.store.write_run_record(node, {"key": key, "lifecycle": [{"status": "running", "at": "2026-01-01T00:00:00+00:00"}]})
    check(fx, rerun=True)
    sidecar = json.loads(Runner(fx.project).store.sidecar_path(node).read_text())
    assert [s["status"] for s in sidecar["lifecycle"]] == ["running", "interrupted", "running", "completed"]
    assert "ended without a trace" in sidecar["lifecycle"][1]["note"]


# ---- the command line ----------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("args", "no_ray", "message"), [
    (["--ray-address", "127.0.0.1:6379"], False, "Error: --ray-address needs --executor ray"),
    (["--executor", "ray"], True, "Error: --executor ray needs the ray package, which is not installed: pip install"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:{port}"], False,
     "Error: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused): start one with `ray start --head`"),
    (["--executor", "ray", "--ray-address", "http://x:y:z"], False, "is not host:port or ray://host:port"),
    (["--executor", "dask"], False, "'dask' is not one of 'local', 'ray'"),
])
def test_executor_mistakes_are_one_line(mean_project, monkeypatch, args, no_ray, message):
    if no_ray:
        monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    port = closed_port()
    out = CliRunner().invoke(cli, ["--project", str(mean_project.root), "verify", *[a.format(port=port) for a in args]])
    assert out.exit_code == 2, out.output
    assert message.format(port=port) in out.output
    assert "Traceback" not in out.output and mean_project.calls("fx_mean") == 0


def test_no_run_never_starts_ray(mean_project, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = CliRunner().invoke(cli, ["--project", str(mean_project.root), "verify", "--no-run", "--executor", "ray"])
    assert out.exit_code == 1 and "stale" in out.output  # as without --executor: nothing ran, nothing needed ray
