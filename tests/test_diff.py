"""`claims diff` between two committed states of the sample project: status, value outside the old
interval, criterion, statement, added and removed claims; the exit code; the Markdown form; the
default revision (the last publish, else HEAD~1); the site's changes page; clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.spec import load_specs
from claims.verify import verify
from site_build import sample
from site_build.build import build_site
from tests.conftest import git

NEW_CLAIM = sample.SPECS["probe-chance"].replace("probe-chance", "probe-chance-two")


@pytest.fixture
def repo(tmp_path, git_env):
    """Two commits: the sample project verified; then a headline claim made to fail (its assert
    tightened), a steering claim rerun with another config (its value leaves its old interval), a
    claim removed and one added, all rerun and committed."""
    project = sample.create(tmp_path / "proj")
    git(project.root, "init", "-q", "-b", "main")
    (project.root / ".gitignore").write_text("build/\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "state one")
    specs = project.specs_dir
    spec = specs / "probe-accuracy.yaml"
    spec.write_text(spec.read_text().replace('assert: "accuracy_ci[0] > 0.5"', 'assert: "accuracy_ci[0] > 0.99"'))
    spec = specs / "steering-slope.yaml"
    spec.write_text(spec.read_text().replace("config: {shift: 0.3}", "config: {shift: 0.1}", 1))
    (specs / "gpu-scale.yaml").unlink()
    (specs / "probe-chance-two.yaml").write_text(NEW_CLAIM.lstrip())
    verify(project, load_specs(specs, project.root), run=True)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "state two")
    return project


def run(project, *args):
    return CliRunner().invoke(cli, ["--project", str(project.root), "diff", *args])


def test_diff_flags_status_moved_value_criterion_and_exits_1_on_a_headline(repo):
    result = run(repo, "HEAD~1")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("claims: HEAD~1 (") and lines[0].endswith(") -> work tree")
    row = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in lines[3:] if line.strip()}
    assert row["probe-accuracy"].startswith("* probe-accuracy") and "verified → failed" in row["probe-accuracy"]
    assert row["probe-accuracy"].endswith("beats control                       status, criterion")  # control holds
    assert row["steering-slope"].startswith("* steering-slope    verified → failed  3.23 → 1.23")
    assert row["steering-slope"].endswith("beats control → control not beaten  "
                                          "status, moved, interval, verdict, statement, criterion")
    assert row["gpu-scale"].endswith("removed") and row["probe-chance-two"].endswith("added")
    assert "probe-vs-random" not in row  # unchanged claims are left out
    assert "steering-slope: the value moved outside its old interval (2.64 to 3.82): 3.23 -> 1.23" in lines
    assert "steering-slope: criterion config.shift was 0.3, now 0.1" in lines
    assert 'probe-accuracy: criterion assert was "accuracy_ci[0] > 0.5", now "accuracy_ci[0] > 0.99"' in lines
    assert lines[-1] == "4 of 7 claims changed; headline status changed: probe-accuracy, steering-slope"


def test_markdown_for_a_pull_request(repo):
    result = run(repo, "HEAD~1", "--format", "markdown")
    md = result.output
    assert md.startswith("### Claims: HEAD~1 (") and "→ work tree\n\n| Claim | Status | Value |" in md
    assert "| **headline** `probe-accuracy` Probe accuracy | verified → failed |" in md
    assert "- steering-slope: criterion config.shift was 0.3, now 0.1" in md
    data = json.loads(run(repo, "HEAD~1", "--format", "json").output)
    flags = {c["id"]: c["flags"] for c in data["claims"]}
    assert flags["probe-accuracy"] == ["status", "criterion"] and flags["probe-vs-random"] == []


def test_no_change_exits_0_and_the_default_is_the_last_publish(repo):
    result = run(repo, "HEAD")
    assert result.exit_code == 0 and result.output.splitlines()[1] == "no claim changed (6 compared)"
    assert "HEAD~1 (" in run(repo).output.splitlines()[0]  # nothing published yet: HEAD~1
    git(repo.root, "update-ref", "refs/claims/published", "HEAD")
    result = run(repo)
    assert result.exit_code == 0 and result.output.startswith("claims: last publish (")
    cached = list((repo.build_dir / "diff").glob("*.json"))
    assert len(cached) == 2  # one state per commit, reused
    cached[0].write_text("{broken")
    assert run(repo, "HEAD~1").exit_code == 1 and run(repo, "HEAD").exit_code == 0


def test_two_revisions(repo):
    result = run(repo, "HEAD~1", "--to", "HEAD")
    assert result.exit_code == 1 and result.output.splitlines()[0].endswith(" -> HEAD (" + git(repo.root, "rev-parse",
                                                                                              "HEAD")[:12] + ")")


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "Error: unknown revision 'nope': give a commit, branch or tag"),
    (["HEAD~5"], "Error: unknown revision 'HEAD~5': give a commit, branch or tag"),
])
def test_a_bad_revision_is_one_line(repo, args, message):
    result = run(repo, *args)
    assert result.exit_code == 2 and result.output.strip() == message


def test_outside_git_is_one_line(tmp_path, git_env):
    project = sample.create(tmp_path / "proj")
    result = run(project)
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {project.root}: not a git checkout, so there is no earlier state to compare with"


def test_the_site_shows_the_changes(repo):
    build_site(repo)
    page = (repo.build_dir / "site" / "changes.html").read_text()
    assert "No publish is recorded from this checkout yet" in page
    assert "4 of 7 claims changed; a headline claim changed status:" in page
    assert '<td class="status-cell" data-label="Status">verified → failed</td>' in page
    assert "<strong>The value moved outside its old interval</strong> (2.64 to 3.82): 3.23 → 1.23." in page
    assert '<span class="flag flag-criterion">criterion</span>' in page
    assert '<a href="changes.html"' in (repo.build_dir / "site" / "index.html").read_text()


# ---- a revision's code never runs unless trusted (issue 19) -------------------------------------------
PAYLOADS = {
    "module level": ("fx_sample_probe.py", "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"),
    "an imported helper": ("fx_helper.py", "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"),
    "requires()": ("fx_sample_probe.py", "def requires(config):\n    from pathlib import Path\n"
                                         "    Path({marker!r}).write_text('ran')\n    return {{}}\n"),
}


@pytest.mark.parametrize("where", list(PAYLOADS))
def test_diff_never_runs_the_code_of_the_revision_it_reads(tmp_path, git_env, where):
    project = sample.create(tmp_path / "proj")
    marker = tmp_path / "the-revision-ran"
    name, payload = PAYLOADS[where]
    probe = project.root / "fx_sample_probe.py"
    clean = probe.read_text()
    (project.root / name).write_text(payload.format(marker=str(marker)) + (clean if name == probe.name else ""))
    if name != probe.name:
        probe.write_text("import fx_helper  # noqa\n" + clean)
    git(project.root, "init", "-q", "-b", "main")
    (project.root / ".gitignore").write_text("build/\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "a branch under review")
    marker.unlink(missing_ok=True)  # the payload ran when the sample was made here, not in diff
    probe.write_text(clean)
    result = run(project, "HEAD")
    assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
    assert "HEAD (" in result.output.splitlines()[0]
    assert not marker.exists()  # judged from its specs and committed results
    trusted = CliRunner().invoke(cli, ["--project", str(project.root), "diff", "HEAD", "--trust-revision"])
    assert "--trust-revision: running the experiment code of HEAD" in trusted.output, trusted.output
    assert marker.exists(), trusted.output  # only when asked, and said


def test_the_committed_judgement_agrees_with_verify(repo):
    """Without running the revision's code, its claims read as verify --no-run reads them."""
    plain = json.loads(run(repo, "HEAD~1", "--format", "json").output)
    trusted = json.loads(CliRunner().invoke(cli, ["--project", str(repo.root), "diff", "HEAD~1", "--format", "json",
                                                  "--trust-revision"]).output.split("\n", 1)[1])
    assert plain["claims"] == trusted["claims"]


@pytest.mark.parametrize(("target", "why"), [
    ("/etc/passwd", "AbsoluteLinkError"),
    ("../../../outside.yaml", "LinkOutsideDestinationError"),
])
def test_a_link_leading_out_of_the_revision_is_skipped(tmp_path, git_env, target, why):
    import os

    project = sample.create(tmp_path / "proj")
    os.symlink(target, project.specs_dir / "zz.yaml")
    git(project.root, "init", "-q", "-b", "main")
    (project.root / ".gitignore").write_text("build/\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "a link")
    (project.specs_dir / "zz.yaml").unlink()
    result = run(project, "HEAD")
    assert result.exit_code == 0, result.output
    assert "diff: HEAD (" in result.output and f"skipped specs/zz.yaml ({why}" in result.output
    assert "Traceback" not in result.output and "root:" not in result.output


def test_the_committed_judgement_reads_a_baseline_with_its_own_experiment(tmp_path):
    """A baseline scored by its own experiment is judged from its committed result, as verify
    judges it (it used to be missing from the committed judgement's nodes)."""
    from claims.revision import judge

    project = sample.create(tmp_path / "proj")
    spec = project.specs_dir / "probe-accuracy.yaml"
    spec.write_text(spec.read_text().replace(
        "  - {label: answer length, difference: gain_over_length}\n",
        "  - {label: answer length, difference: gain_over_length}\n"
        "  - {label: the unshifted probe's length gain, experiment: fx_sample_probe, config: {shift: 0.0},\n"
        "     value: accuracy, difference: gain_over_length}\n"))
    verified = {o.id: o for o in verify(project, load_specs(project.specs_dir, project.root), run=True)[0]}
    judged = {c["id"]: c for c in judge(project.root)}
    ours, theirs = judged["probe-accuracy"], verified["probe-accuracy"]
    assert [b["experiment"] for b in ours["baselines"]] == [None, "fx_sample_probe"]
    assert ours["baselines"] == theirs.baselines and ours["status"] == theirs.status
