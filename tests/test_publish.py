"""publish.sh: verify -> build -> publish to a directory or to a branch of a (local bare) remote;
it refuses, and says why, when a claim does not stand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_site import FAILING, make

SCRIPT = Path(__file__).resolve().parents[1] / "publish.sh"
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None,
                                reason="publish.sh needs bash and git")


@pytest.fixture
def env(tmp_path):
    """A git that never looks above tmp_path, with an identity, and the test's Python."""
    return {**os.environ, "PYTHON": sys.executable, "GIT_CEILING_DIRECTORIES": str(tmp_path),
            "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@localhost"}


def publish(project, env, *args):
    return subprocess.run(["bash", str(SCRIPT), "--project", str(project.root), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def git(cwd, env, *args) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_publish_to_a_directory(tmp_path, env):
    project = make(tmp_path)
    target = tmp_path / "www" / "study"
    out = publish(project, env, str(target))
    assert out.returncode == 0, out.stderr
    assert "5/5 required claims verified" in out.stdout and f"to {target}" in out.stdout
    assert (target / "index.html").is_file() and (target / "claims" / "probe-accuracy.html").is_file()
    assert (target / "paper" / "paper.html").is_file() and (target / "paper" / "paper.md").is_file()
    assert (target / "claims.json").is_file() and not (target / ".manifest.json").exists()
    # a second publish replaces the first, removing what the site no longer has
    (project.content_dir / "methods.md").unlink()
    assert publish(project, env, str(target)).returncode == 0
    assert not (target / "methods.html").exists() and (target / "index.html").is_file()


def test_refuses_a_directory_it_did_not_make(tmp_path, env):
    project = make(tmp_path)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    out = publish(project, env, str(target))
    assert out.returncode == 1
    assert "refusing to publish into" in out.stderr and "no .claims-published" in out.stderr
    assert (target / "notes.txt").read_text() == "keep me"


def test_refuses_when_a_claim_fails_and_says_why(tmp_path, env):
    project = make(tmp_path, {"probe-near-perfect": FAILING})
    target = tmp_path / "www"
    out = publish(project, env, str(target))
    assert out.returncode == 1
    assert "refusing to publish: not every required claim is verified" in out.stderr
    assert "probe-near-perfect: assertion is false: accuracy_ci[0] > 0.99" in out.stderr
    assert not target.exists()


def test_refuses_when_a_strict_build_warns(tmp_path, env):
    project = make(tmp_path, content={"content/methods.md": "# Methods\n\n{{ claim('no-such') }}\n"})
    out = publish(project, env, str(tmp_path / "www"))
    assert out.returncode == 1
    assert "content/methods.md: cites unknown claim 'no-such'" in out.stderr
    assert "refusing to publish: build-site --strict failed" in out.stderr
    assert not (tmp_path / "www").exists()


def test_publish_to_a_branch_of_a_bare_remote(tmp_path, env):
    project = make(tmp_path)
    remote = tmp_path / "remote.git"
    git(tmp_path, env, "init", "--quiet", "--bare", str(remote))
    git(project.root, env, "init", "--quiet", "-b", "main")
    git(project.root, env, "add", "-A")
    git(project.root, env, "commit", "--quiet", "-m", "study")
    git(project.root, env, "remote", "add", "origin", str(remote))

    first = publish(project, env, "--branch", "gh-pages")
    assert first.returncode == 0, first.stderr
    assert "making its first commit" in first.stdout and "to 'gh-pages' on 'origin'" in first.stdout
    files = git(remote, env, "ls-tree", "-r", "--name-only", "gh-pages").splitlines()
    assert {"index.html", ".nojekyll", "claims.json", "claims/probe-accuracy.html", "paper/paper.md",
            "figures/steering-slope.svg"} <= set(files)
    assert ".manifest.json" not in files and "fx_sample_probe.py" not in files  # only the site
    assert git(project.root, env, "worktree", "list").count("\n") == 0  # the temporary worktree is gone
    assert git(project.root, env, "branch", "--list") == "* main"  # no local branch was made

    head = git(project.root, env, "rev-parse", "HEAD")
    assert git(project.root, env, "rev-parse", "refs/claims/published") == head  # what `claims diff` compares with
    assert f"recorded {head[:7]} as refs/claims/published" in first.stdout

    # the changes page now compares with the recorded publish (it had no earlier state): one commit more
    again = publish(project, env, "--branch", "gh-pages")
    assert again.returncode == 0 and "already has this site" not in again.stdout
    assert "compares with the previous commit" not in git(remote, env, "show", "gh-pages:changes.html")
    assert "No claim changed" in git(remote, env, "show", "gh-pages:changes.html")
    same = publish(project, env, "--branch", "gh-pages")
    assert same.returncode == 0 and "already has this site" in same.stdout
    assert git(remote, env, "rev-list", "--count", "gh-pages") == "2"

    story = project.content_dir / "story.md"
    story.write_text(story.read_text() + "\nA new paragraph.\n")
    third = publish(project, env, "--branch", "gh-pages")
    assert third.returncode == 0, third.stderr
    assert git(remote, env, "rev-list", "--count", "gh-pages") == "3"
    assert "A new paragraph." in git(remote, env, "show", "gh-pages:story.html")
    message = git(remote, env, "log", "-1", "--format=%s", "gh-pages")
    assert message.startswith("Publish site from ") and message.endswith("(every required claim verified)")


def test_branch_publish_refused_when_a_claim_fails(tmp_path, env):
    project = make(tmp_path, {"probe-near-perfect": FAILING})
    remote = tmp_path / "remote.git"
    git(tmp_path, env, "init", "--quiet", "--bare", str(remote))
    git(project.root, env, "init", "--quiet", "-b", "main")
    git(project.root, env, "add", "-A")
    git(project.root, env, "commit", "--quiet", "-m", "study")
    git(project.root, env, "remote", "add", "origin", str(remote))
    out = publish(project, env, "--branch", "gh-pages")
    assert out.returncode == 1 and "refusing to publish" in out.stderr
    assert git(remote, env, "branch", "--list") == ""


@pytest.mark.parametrize(("args", "message"), [
    ([], "give a target directory or --branch NAME"),
    (["a", "b"], "one target directory only"),
    (["dir", "--branch", "gh-pages"], "give a directory or --branch, not both"),
    (["--frobnicate"], "unknown option --frobnicate"),
])
def test_usage_errors(tmp_path, env, args, message):
    out = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and message in out.stderr


def test_published_files_are_world_readable(tmp_path, env):
    project = make(tmp_path)
    target = tmp_path / "www"
    old = os.umask(0o077)  # a strict umask must not leak into the published site
    try:
        assert publish(project, env, str(target)).returncode == 0
    finally:
        os.umask(old)
    files = [p for p in target.rglob("*") if p.is_file()]
    folders = [target, *(p for p in target.rglob("*") if p.is_dir())]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o755"}


def test_a_wrong_project_is_a_usage_error(tmp_path, env):
    out = subprocess.run(["bash", str(SCRIPT), "--project", str(tmp_path / "nope"), str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--project" in out.stderr and "no such directory" in out.stderr
    (tmp_path / "empty").mkdir()
    out = subprocess.run(["bash", str(SCRIPT), "--project", str(tmp_path / "empty"), str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a claims project" in out.stderr
    assert not (tmp_path / "out").exists()


def test_strict_refuses_results_made_from_uncommitted_code(tmp_path, env):
    project = make(tmp_path)
    for path in project.artifacts_dir.rglob("*"):
        if path.is_file():
            path.unlink()
    git(project.root, env, "init", "-q")
    git(project.root, env, "add", "-A")
    git(project.root, env, "commit", "-qm", "code")
    (project.root / "fx_sample_probe.py").write_text((project.root / "fx_sample_probe.py").read_text() + "\n# edited\n")
    run = subprocess.run([sys.executable, "-m", "claims", "--project", str(project.root), "verify"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = publish(project, env, "--strict", str(tmp_path / "strict"))
    assert out.returncode == 1 and "refusing to publish (--strict): results made from a work tree with " \
                                   "uncommitted changes: detect-vs-steer probe-accuracy probe-chance probe-vs-random steering-slope" in out.stderr
    assert not (tmp_path / "strict").exists()
    assert publish(project, env, str(tmp_path / "lenient")).returncode == 0
    page = (tmp_path / "lenient" / "claims" / "probe-accuracy.html").read_text()
    assert "Made from uncommitted code" in page


# ---- third round (issue 19): nothing committed is lost, targets and names checked before building --------
def _repo_with_remote(tmp_path, env, project, default="main"):
    remote = tmp_path / "remote.git"
    git(tmp_path, env, "init", "--quiet", "--bare", str(remote))
    git(project.root, env, "init", "--quiet", "-b", "main")
    (project.root / ".gitignore").write_text("build/\n")
    git(project.root, env, "add", "-A")
    git(project.root, env, "commit", "--quiet", "-m", "study")
    git(project.root, env, "remote", "add", "origin", str(remote))
    git(project.root, env, "push", "--quiet", "origin", f"main:{default}")
    git(remote, env, "symbolic-ref", "HEAD", f"refs/heads/{default}")
    return remote


@pytest.mark.parametrize(("branch", "default", "rc", "message"), [
    ("main", "trunk", 1, "refusing to publish to 'main': it is the branch checked out here"),
    ("trunk", "trunk", 1, "refusing to publish to 'trunk': it is the default branch of 'origin'"),
    ("a..b", "main", 2, "--branch a..b: not a valid branch name"),
    ("pages.lock", "main", 2, "--branch pages.lock: not a valid branch name"),
    ("with space", "main", 2, "--branch with space: not a valid branch name"),
])
def test_refuses_the_source_branches_and_bad_names_before_building(tmp_path, env, branch, default, rc, message):
    project = make(tmp_path)
    remote = _repo_with_remote(tmp_path, env, project, default)
    before = git(remote, env, "for-each-ref")
    out = publish(project, env, "--branch", branch)
    assert out.returncode == rc and message in out.stderr, out.stderr
    assert "verifying" not in out.stdout and not (project.build_dir / "site").exists()  # nothing built
    assert git(remote, env, "for-each-ref") == before


def test_uncommitted_edits_are_refused_under_strict_and_recorded_otherwise(tmp_path, env):
    project = make(tmp_path)
    remote = _repo_with_remote(tmp_path, env, project)
    story = project.content_dir / "story.md"
    story.write_text(story.read_text() + "\nAn uncommitted paragraph.\n")
    strict = publish(project, env, "--strict", "--branch", "gh-pages")
    assert strict.returncode == 1 and "refusing to publish (--strict): the work tree has uncommitted changes " \
                                      "(content/story.md)" in strict.stderr, strict.stderr
    assert git(remote, env, "branch", "--list") == "* main"
    out = publish(project, env, "--branch", "gh-pages")
    assert out.returncode == 0, out.stderr
    head = git(project.root, env, "rev-parse", "--short", "HEAD")
    assert f"recorded {head} + uncommitted changes as refs/claims/published" in out.stdout
    assert git(remote, env, "log", "-1", "--format=%s", "gh-pages") == \
        f"Publish site from {head} + uncommitted changes (every required claim verified)"
    assert f"made from {head} + uncommitted changes" in git(project.root, env, "reflog", "refs/claims/published")
    target = tmp_path / "www"
    assert publish(project, env, str(target)).returncode == 0
    assert f"made from {head} + uncommitted changes" in (target / ".claims-published").read_text()


@pytest.mark.parametrize("kind", ["link to a folder", "dangling link", "self loop"])
def test_a_symlinked_target(tmp_path, env, kind):
    project = make(tmp_path)
    link, real = tmp_path / "www", tmp_path / "real-www"
    if kind == "link to a folder":
        real.mkdir()
    if kind == "self loop":
        os.symlink(link.name, link)
    else:
        os.symlink(real if kind != "dangling link" else tmp_path / "nowhere", link)
    out = publish(project, env, str(link))
    if kind in ("dangling link", "self loop"):
        assert out.returncode == 1 and "is a symbolic link that leads nowhere (dangling, or a loop)" in out.stderr
        assert "verifying" not in out.stdout and not (project.build_dir / "site").exists()
        assert link.is_symlink() and not list(tmp_path.glob(".publish.*"))
    else:
        assert out.returncode == 0, out.stderr
        assert link.is_symlink() and (real / "index.html").is_file()  # the link is kept, its folder filled


@pytest.fixture
def full_disk(tmp_path, env):
    """A `cp` that hits a file-size limit (EFBIG, as a full disk gives ENOSPC) after 8 KiB of a file."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "cp").write_text(f"#!/bin/bash\ntrap '' XFSZ\nulimit -f 16\nexec {shutil.which('cp')} \"$@\"\n")
    (shim / "cp").chmod(0o755)
    return {**env, "PATH": f"{shim}:{env['PATH']}"}


@pytest.mark.parametrize("earlier", [False, True])
def test_a_full_disk_while_copying_fails_in_one_line_and_leaves_nothing(tmp_path, env, full_disk, earlier):
    project = make(tmp_path)
    target = tmp_path / "www"
    if earlier:
        assert publish(project, env, str(target)).returncode == 0
    before = sorted(p.relative_to(tmp_path).as_posix() for p in target.rglob("*")) if earlier else []
    out = publish(project, full_disk, str(target))
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith(("publish.sh:", "cp:"))]
    assert len(errors) == 1 and errors[0].startswith(f"publish.sh: cannot copy the site into {tmp_path}/.publish.")
    assert "File too large" in errors[0]
    assert not list(tmp_path.glob(".publish.*")) and not list(tmp_path.glob(".unpublish.*"))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in target.rglob("*")) == before  # the old site intact
