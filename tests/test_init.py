"""`claims init` makes a project that verifies and builds; nothing in it can shadow the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.project import Project
from tests.conftest import git

ENGINE_ROOT = Path(__file__).resolve().parents[1]


def engine_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ENGINE_ROOT), "PYTHON": sys.executable, **extra}


@pytest.fixture
def forget_package():
    """The scaffolded package is imported by in-process commands; a later test must read its own."""
    yield
    for name in [m for m in sys.modules if m == "coin_study" or m.startswith("coin_study.")]:
        del sys.modules[name]


def test_init_then_verify_then_the_ci_gate_builds_site_and_paper(tmp_path, git_env, forget_package):
    root = tmp_path / "coin-study"
    out = CliRunner().invoke(cli, ["init", str(root)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "wrote specs/coin-bias.yaml" in out.output and "wrote coin_study/coin.py" in out.output
    assert not (root / "claims").exists() and (root / "coin_study" / "__init__.py").is_file()
    project = Project.at(root)
    assert project.specs_dir == root / "specs"

    verify = CliRunner().invoke(cli, ["--project", str(root), "verify"], catch_exceptions=False)
    assert verify.exit_code == 0, verify.output
    assert "1/1 required claims verified; ran 2" in verify.output
    assert "git: made a git repository" in out.output
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a new study and its first results")

    # the project's CI gate: coverage, verify --no-run, strict paper and site builds
    gate = subprocess.run([str(root / ".ci" / "run")], cwd=root, env=engine_env(), capture_output=True, text=True,
                          timeout=300)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "coverage: 0 finding(s)" in gate.stdout
    site, paper = root / "build" / "site", root / "build" / "paper"
    page = (site / "claims" / "coin-bias.html").read_text()
    assert "The weighted coin favours heads" in page and "verified" in page
    assert "The weighted coin lands heads in 60." in (paper / "paper.md").read_text()
    assert (paper / "paper.pdf").stat().st_size > 0
    # nothing the engine's own study knows about leaks into a new project's pages
    for path in [*site.rglob("*.html"), paper / "paper.md", site / "claims.json"]:
        text = path.read_text().lower()
        for word in ("gemma", "claims-interp", "hallucinat", "neuron", "model behind these results"):
            assert word not in text, f"{path.relative_to(root)} says {word!r}"


@pytest.mark.parametrize("args, message", [
    (["--package", "claims"], "the project's package cannot be named 'claims': it would shadow the module"),
    (["--package", "json"], "the project's package cannot be named 'json'"),
    (["--package", "not-a-name"], "--package 'not-a-name' is not a Python package name"),
])
def test_init_refuses_a_package_that_would_shadow(tmp_path, args, message):
    out = CliRunner().invoke(cli, ["init", str(tmp_path / "p"), *args])
    assert out.exit_code == 2 and message in out.output
    assert not (tmp_path / "p" / "specs").exists()


def test_init_overwrites_nothing(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "index.md").write_text("mine")
    out = CliRunner().invoke(cli, ["init", str(tmp_path)])
    assert out.exit_code == 2 and "already has content/index.md: claims init writes a new project" in out.output
    assert (tmp_path / "content" / "index.md").read_text() == "mine" and not (tmp_path / "specs").exists()


def test_a_project_package_named_claims_is_one_clear_error(tmp_path):
    (tmp_path / "claims" / "specs").mkdir(parents=True)
    (tmp_path / "claims" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("[tool.claims]\n")
    out = CliRunner().invoke(cli, ["--project", str(tmp_path), "status"])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "Error: claims/ is a Python package named like the engine and is imported in its place: rename it (your "
        'code in its own package; specs in specs/ with [tool.claims] specs = "specs")']


EDITABLE = '''
import importlib.machinery, os, runpy, sys
engine = os.environ["ENGINE_ROOT"]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != engine]
class Editable:  # what `pip install -e` puts on sys.meta_path: consulted after the path-based finder
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] not in ("claims", "site_build", "paper_build"):
            return None
        return importlib.machinery.PathFinder.find_spec(name, [os.path.join(engine, *name.split(".")[:-1])])
sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in type(f).__name__ + getattr(f, "__name__", "")]
sys.meta_path.append(Editable)
sys.path.insert(0, os.getcwd())  # python -m puts the current directory first
sys.argv = ["claims", *sys.argv[1:]]
runpy.run_module("claims", run_name="__main__", alter_sys=True)
'''


def test_a_claims_folder_in_the_project_does_not_shadow_an_editable_engine(tmp_path):
    """The old layout (claims/specs/ at the top of a project, no __init__.py) is a namespace package
    that an editable install's finder loses to; `python -m claims` loads its own package instead."""
    root = tmp_path / "old"
    (root / "claims" / "specs").mkdir(parents=True)
    (root / "mine").mkdir()
    (root / "mine" / "__init__.py").write_text("")
    (root / "mine" / "flip.py").write_text(
        "from claims import Estimate, Result\n\n\ndef run(config, ctx):\n"
        "    return Result(estimates={'heads': Estimate(value=0.5, ci=(0.4, 0.6), level=0.95, n=100, method='wilson')})\n")
    (root / "claims" / "specs" / "flip.yaml").write_text(
        "id: flip\ntitle: Flip\nstatement: Heads {heads:.2f}.\nexperiment: mine.flip\nmetric: heads\n"
        "uncertainty: {method: wilson, level: 0.95}\nassert: \"heads_ci[0] > 0.3\"\ncontrol: none\n"
        "why_no_control: a test of the layout\n")
    (root / "pyproject.toml").write_text("[tool.claims]\n")
    script = tmp_path / "editable.py"
    script.write_text(EDITABLE)
    env = {k: v for k, v in engine_env(ENGINE_ROOT=str(ENGINE_ROOT)).items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(script), "verify"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "cannot import name 'Estimate'" not in out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1/1 required claims verified" in out.stdout
