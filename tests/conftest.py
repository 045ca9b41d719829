from __future__ import annotations

import contextlib
import importlib
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.dont_write_bytecode = True  # fixture modules are rewritten within one second in some tests

# Tests get throwaway experiment caches, but share the dequantized model (minutes to rebuild).
os.environ.setdefault(
    "CLAIMS_MODEL_CACHE",
    str(Path(os.environ.get("CLAIMS_CACHE") or Path.home() / ".cache" / "claims-interp").expanduser() / "models"),
)


@pytest.fixture
def project(tmp_path):
    """The repository's own project with its artifacts and build in tmp_path (the chain tests on the
    tiny model); tests that build a project of their own override it."""
    from dataclasses import replace

    from claims.project import Project

    project = replace(Project.at(Path(__file__).resolve().parents[1]), artifacts_dir=tmp_path / "artifacts",
                      build_dir=tmp_path / "build")
    project.activate()
    return project


@contextlib.contextmanager
def shared_project(tmp: Path) -> Iterator[None]:
    """For a module-scoped fixture that builds one project for several tests: its own cache, and
    afterwards no trace in the process (its fixture modules fx_* and its sys.path entry go), so
    that a later project's module of the same name is read from its own files."""
    path = list(sys.path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAIMS_CACHE", str(tmp / "cache"))
        yield
    for name in [m for m in sys.modules if m.startswith("fx_")]:
        del sys.modules[name]
    sys.path[:] = path
    importlib.invalidate_caches()


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, quiet progress bars, and a clean import state."""
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("CI", "1")
    modules, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        if name.startswith("fx_"):
            del sys.modules[name]
    sys.path[:] = path
    importlib.invalidate_caches()


class FixtureProject:
    """A throwaway claims project written from dicts: specs, experiment modules, content."""

    def __init__(self, root: Path):
        self.root = root
        (root / "specs").mkdir(parents=True, exist_ok=True)
        (root / "pyproject.toml").write_text(
            '[tool.claims]\nspecs = "specs"\nartifacts = "artifacts"\ncontent = "content"\n'
        )

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def spec(self, claim_id: str, text: str) -> Path:
        return self.write(f"specs/{claim_id}.yaml", text)

    def module(self, name: str, text: str) -> Path:
        path = self.write(f"{name.replace('.', '/')}.py", text)
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
        importlib.invalidate_caches()
        return path

    @property
    def project(self):
        from claims.project import Project

        project = Project.at(self.root)
        project.activate()
        return project

    def calls(self, name: str) -> int:
        """How many times a fixture experiment's run() executed (they count in the cache)."""
        from claims.project import Project

        path = Project.at(self.root).cache_dir / "calls" / name
        return len(path.read_text()) if path.exists() else 0


@pytest.fixture
def fx(tmp_path) -> FixtureProject:
    return FixtureProject(tmp_path / "proj")


# Experiment modules used across the engine tests. Each counts its calls in $CLAIMS_CACHE/calls/.
MEAN = '''
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from claims import Estimate, Result


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shift: float = 1.0
    n: int = 200
    seed: int = 0
    with_ci: bool = True


def count(name):
    calls = Path(os.environ["CLAIMS_CACHE"]) / "calls" / name
    calls.parent.mkdir(parents=True, exist_ok=True)
    with open(calls, "a") as f:
        f.write("x")


def run(config, ctx):
    count(__name__)
    x = ctx.rng.normal(config["shift"], 1.0, size=config["n"])
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    ci = (float(x.mean() - half), float(x.mean() + half)) if config["with_ci"] else None
    est = Estimate(value=float(x.mean()), ci=ci, level=0.95 if ci else None, n=len(x), method="analytic-normal")
    return Result(estimates={"mean": est}, values={"n_draws": len(x)})
'''

MEAN_SPEC = """
id: {id}
title: Mean shift
statement: The mean is {{mean:.2f}} ({{level:.0%}} CI {{mean_ci[0]:.2f}} to {{mean_ci[1]:.2f}}, n = {{mean_n}}).
experiment: fx_mean
config: {{shift: {shift}}}
metric: mean
uncertainty: {{method: analytic, level: 0.95}}
assert: "mean_ci[0] > 0"
control:
  experiment: fx_mean
  config: {{shift: 0.0}}
  assert: "mean_ci[0] > control.mean_ci[1]"
"""


@pytest.fixture
def mean_project(fx) -> FixtureProject:
    fx.module("fx_mean", MEAN)
    fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=1.0))
    return fx


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """A git that never looks above tmp_path, with an identity and no user or system config."""
    for key, value in {"GIT_CEILING_DIRECTORIES": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path),
                       "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "Test",
                       "GIT_COMMITTER_EMAIL": "t@localhost"}.items():
        monkeypatch.setenv(key, value)


def git(root: Path, *args: str) -> str:
    """Run git in `root`; its output, or the test fails with git's message."""
    import subprocess

    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
