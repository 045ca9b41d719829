"""The Ray executor on a local Ray with 2 CPUs (temp dir in the test's cache, shut down after each
test): a fixture DAG and a real sweep on the tiny model give the local executor's bytes and reuse
each other's results; a worker killed mid-task is retried and leaves no half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner

from claims.cli import cli
from claims.executor.cluster import connect
from claims.executor.schedule import RayExecutor
from claims.node import Node
from claims.runner import Runner
from tests.conftest import MEAN, MEAN_SPEC
from tests.test_engine import DOWN_SPEC, DOWNSTREAM, NO_CONTROL_SPEC, STEPS, UPSTREAM
from tests.test_executor import check, result_bytes, sweep_project, unit_log


@pytest.fixture
def session(fx):
    """A local Ray with 2 CPUs for the test, its temp dir in the test's cache; shut down after."""
    with connect(fx.project, num_cpus=2) as live:
        assert Path(live.ray.get_runtime_context().gcs_address)  # connected
        yield live
    assert not ray.is_initialized()


def on_ray(fx, session, **kw):
    return check(fx, executor=RayExecutor(session), **kw)


def use_cache(fx, monkeypatch, name: str) -> Path:
    cache = fx.root.parent / name
    monkeypatch.setenv("CLAIMS_CACHE", str(cache))
    return cache


def debris(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob("*.tmp") if "ray" not in p.relative_to(f).parts[:1]]


def sidecar_keys(fx) -> dict[str, str]:
    return {p.relative_to(fx.root / "artifacts").as_posix(): json.loads(p.read_text())["key"]
            for p in sorted((fx.root / "artifacts").glob("*/*.provenance.json"))}


FAILS = "def run(config, ctx):\n    raise ValueError('the data went missing')\n"
NEEDS_GPU = MEAN.replace("class Config", "RESOURCES = {'num_gpus': 1}\n\n\nclass Config")


def test_fixture_dag_on_ray_gives_the_local_bytes_and_each_reuses_the_other(fx, session, monkeypatch):
    fx.module("fx_mean", MEAN)
    fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=1.0) + "resources: {num_cpus: 2}\n")
    fx.module("fx_up", UPSTREAM)
    fx.module("fx_down", DOWNSTREAM)
    fx.write("data/input.txt", "1 2 3\n")
    fx.spec("down", DOWN_SPEC)
    fx.module("fx_boom", FAILS)
    fx.spec("boom", NO_CONTROL_SPEC.format(id="boom", experiment="fx_boom"))
    fx.module("fx_gpu", NEEDS_GPU)
    fx.spec("gpu", MEAN_SPEC.format(id="gpu", shift=2.0).replace("fx_mean", "fx_gpu"))

    use_cache(fx, monkeypatch, "cache-local")
    local, local_runner = check(fx)
    (fx.root / "artifacts").rename(fx.root / "artifacts-local")
    use_cache(fx, monkeypatch, "cache-ray")
    remote, remote_runner = on_ray(fx, session)

    assert {i: o.status for i, o in remote.items()} == {"mean-shift": "verified", "down": "verified",
                                                         "boom": "error", "gpu": "error"}
    assert remote["boom"].problems == local["boom"].problems  # the same one-line error, traceback in the record
    assert "ValueError: the data went missing (traceback in $CLAIMS_CACHE/runs/fx_boom/" in remote["boom"].problems[0]
    assert "needs 1 CPU, 1 GPU per task, and no machine of the Ray cluster has that" in remote["gpu"].problems[0]
    assert local["gpu"].status == "verified"  # locally resources are not read
    for experiment in ("fx_mean", "fx_up", "fx_down"):
        local_bytes = {p.name: p.read_bytes() for p in (fx.root / "artifacts-local" / experiment).glob("*.json")
                       if ".provenance" not in p.name}
        assert result_bytes(fx, experiment) == local_bytes  # byte-identical results
    ray_keys = sidecar_keys(fx)
    assert [n.label for n in remote_runner.ran] and sorted(n.label for n in remote_runner.ran) == sorted(
        n.label for n in local_runner.ran if n.experiment != "fx_gpu")
    record = Runner(fx.project).store.read_run_record(Node.make("fx_boom", {}))
    assert [s["status"] for s in record["lifecycle"]] == ["running", "failed"]

    outcomes, runner = check(fx)  # local on the store Ray filled: reuses it all
    assert sorted(n.experiment for n in runner.ran) == ["fx_gpu", "fx_gpu"]  # and fx_boom failed again
    (fx.root / "artifacts").rename(fx.root / "artifacts-ray")
    (fx.root / "artifacts-local").rename(fx.root / "artifacts")
    use_cache(fx, monkeypatch, "cache-local")
    outcomes, runner = on_ray(fx, session)  # Ray on the store the local run filled: no task but the failing ones
    assert not runner.ran
    # reusing needs no resources: the GPU claim's results, made locally, are reused too
    assert sorted(n.experiment for n in runner.reused) == ["fx_down", "fx_gpu", "fx_gpu", "fx_mean", "fx_mean"]
    assert {k: v for k, v in sidecar_keys(fx).items() if "fx_gpu" not in k} == \
        {k: v for k, v in ray_keys.items() if "fx_gpu" not in k}

    # a fresh upstream whose blob is gone, under a dependant that must run: it runs first, on Ray
    numbers = json.loads(next(iter(result_bytes(fx, "fx_up").values())))["files"]["numbers"]
    Runner(fx.project).store.find_blob(numbers).unlink()
    fx.spec("down", DOWN_SPEC.replace("scale: 2", "scale: 3"))
    outcomes, runner = on_ray(fx, session)
    assert outcomes["down"].status == "verified" and [n.experiment for n in runner.ran if n.experiment != "fx_boom"] \
        == ["fx_up", "fx_down"]
    assert Runner(fx.project).store.verified_blob(numbers)  # rebuilt, the same bytes


# test_engine's STEPS (ten checkpointed steps), killed instead of interrupted: SIGKILL mid-write of a
# step and of a blob, at the step named by the marker $CLAIMS_CACHE/interrupt-at-<i>
KILLED = STEPS.replace("                raise KeyboardInterrupt\n", """\
                import signal
                from claims.store import temp_file
                for folder, name in ((ckpt.folder, f"{i}.json"), (cache, "values.npz")):
                    fd, _ = temp_file(folder, name)
                    os.write(fd, b'{"val')
                os.kill(os.getpid(), signal.SIGKILL)
""")
assert KILLED != STEPS


def test_a_tiny_model_sweep_fans_out_and_killed_workers_are_retried_without_debris(fx, session, monkeypatch):
    sweep_project(fx, alphas=[0.0, 1.0, 2.0, 3.0], seeds=2)
    fx.module("fx_killed", KILLED)
    fx.spec("killed", NO_CONTROL_SPEC.format(id="killed", experiment="fx_killed"))
    use_cache(fx, monkeypatch, "cache-local")
    local, _ = check(fx)
    assert {o.status for o in local.values()} == {"verified"}
    local_bytes = {e: result_bytes(fx, e) for e in ("fx_sweep", "fx_killed")}
    (fx.root / "artifacts").rename(fx.root / "artifacts-local")

    cache = use_cache(fx, monkeypatch, "cache-ray")
    cache.mkdir()
    (cache / "kill-0.0-0").write_text("")  # this unit's worker dies mid-write on its first attempt
    (cache / "interrupt-at-3").write_text("")  # this node's worker dies mid-write at step 3
    remote, runner = on_ray(fx, session)
    assert {o.status for o in remote.values()} == {"verified"}, [o.problems for o in remote.values()]
    assert {e: result_bytes(fx, e) for e in local_bytes} == local_bytes  # the local executor's bytes
    assert sorted(unit_log(fx)) == sorted(f"{a}-{s}" for a in (0.0, 1.0, 2.0, 3.0) for s in (0, 1))  # each once
    pids = {line.split(",")[1] for line in (cache / "units").read_text().split()}
    assert len(pids) >= 2 and str(os.getpid()) not in pids  # units ran in parallel, in workers
    assert (cache / "steps-done").read_text().split() == [str(i) for i in range(10)]  # resumed: no step twice
    assert not debris(fx.root / "artifacts", cache)  # the killed writes' temp files were removed
    assert not (cache / "checkpoints").exists() or not any((cache / "checkpoints").iterdir())
    sidecar, local_sidecar = (json.loads(next((fx.root / folder / "fx_killed").glob("*.provenance.json")).read_text())
                              for folder in ("artifacts", "artifacts-local"))
    assert [s["status"] for s in sidecar["lifecycle"]] == ["running", "interrupted", "running", "completed"]
    assert sidecar["key"] == local_sidecar["key"] and sidecar["argv"] == local_sidecar["argv"]  # the driver's command
    assert "default_worker" not in json.dumps(sidecar) and str(cache) not in json.dumps(sidecar)

    outcomes, runner = on_ray(fx, session, rerun=True)  # --rerun: every unit again, once
    assert sorted(n.experiment for n in runner.ran) == ["fx_killed", "fx_sweep"]
    assert len(unit_log(fx)) == 16 and result_bytes(fx, "fx_sweep") == local_bytes["fx_sweep"]


def test_cli_starts_a_local_ray_for_the_command_and_stops_it(mean_project):
    fx = mean_project
    args = ["--project", str(fx.root), "verify", "--executor", "ray"]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "ray: 2 done, 0 running, 0 failed, 0 reused, 0 waiting" in first.output
    assert "ran 2, reused 0" in first.output
    assert not ray.is_initialized() and (fx.project.cache_dir / "ray").is_dir()  # temp dir in the cache
    second = CliRunner().invoke(cli, ["--project", str(fx.root), "verify"], catch_exceptions=False)
    assert "ran 0, reused 2" in second.output and fx.calls("fx_mean") == 2
