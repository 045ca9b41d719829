"""The documentation the tool writes about itself is current, and the repository can be cited."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from click.testing import CliRunner

from claims.cli import cli
from claims.reference import markdown
from tests.conftest import git

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_reference_is_current():
    """docs/reference.md is written from the models; a new spec field must appear there."""
    assert (ROOT / "docs" / "reference.md").read_text() == markdown(), \
        "docs/reference.md is out of date: run python -m claims reference --write docs/reference.md"


def test_the_reference_documents_every_spec_field_and_setting():
    from claims.project import SETTINGS
    from claims.spec import ClaimSpec, ControlSpec

    text = markdown()
    for model in (ClaimSpec, ControlSpec):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, name
    for name in SETTINGS:
        assert f"| `{name}` |" in text


def test_reference_writes_without_a_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(cli, ["reference", "--write", "ref.md"], catch_exceptions=False)
    assert out.exit_code == 0 and (tmp_path / "ref.md").read_text() == markdown()


def test_citation_file_is_valid_and_matches_the_package_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["title"]
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["version"] == version


def _block_after(text: str, marker: str) -> str:
    """The fenced code block that follows `marker` in the README."""
    rest = text[text.index(marker):]
    start = rest.index("```")
    body = rest[rest.index("\n", start) + 1:]
    return body[:body.index("```")]


def test_the_readme_tutorial_works_as_written(tmp_path, git_env):
    """The tutorial's experiment module, spec and citation, pasted into a project `claims init`
    made, verify (the detector beats its baseline and its control) and pass the coverage gate."""
    import sys

    readme = (ROOT / "README.md").read_text()
    assert "make all" in readme and "make test" in readme
    root = tmp_path / "coin-study"
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    (root / "coin_study" / "detect.py").write_text(_block_after(readme, "Write `coin_study/detect.py`:"))
    (root / "specs" / "coin-detector.yaml").write_text(_block_after(readme, "Then `specs/coin-detector.yaml`:"))
    with open(root / "content" / "paper" / "01-results.md", "a") as paper:
        paper.write("\n" + _block_after(readme, "appending to `content/paper/01-results.md`:"))
    try:
        out = CliRunner().invoke(cli, ["--project", str(root), "verify"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        assert "2/2 required claims verified" in out.output
        git(root, "add", "-A")
        git(root, "commit", "-qm", "A detector claim, with its results")
        gate = CliRunner().invoke(cli, ["--project", str(root), "coverage"], catch_exceptions=False)
        assert gate.exit_code == 0 and "coverage: 0 finding(s)" in gate.output, gate.output
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "coin_study"]:
            del sys.modules[name]
