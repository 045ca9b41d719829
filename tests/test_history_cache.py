"""The criterion history is read from git once per commit and spec version, then from the cache."""

from __future__ import annotations

import pytest

from claims import history as reader
from claims import history_cache
from claims.spec import load_specs
from site_build.sample import write
from tests.conftest import git


@pytest.fixture
def repo(tmp_path, git_env):
    root = tmp_path / "sample"
    write(root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "specs")
    from claims.project import Project

    return Project.at(root)


def test_history_is_read_from_git_once_per_commit_and_spec(repo, monkeypatch):
    project = repo
    calls = []
    real = reader.history
    monkeypatch.setattr(reader, "history", lambda p, s: calls.append(s.id) or real(p, s))
    spec_path = project.specs_dir / "probe-accuracy.yaml"
    spec = load_specs(project.specs_dir, project.root)["probe-accuracy"]
    assert history_cache.history(project, spec) == [] and calls == ["probe-accuracy"]
    assert history_cache.history(project, spec) == [] and calls == ["probe-accuracy"]  # cached

    spec_path.write_text(spec_path.read_text().replace("accuracy_ci[0] > 0.5", "accuracy_ci[0] > 0.4"))
    spec = load_specs(project.specs_dir, project.root)["probe-accuracy"]
    [change] = history_cache.history(project, spec)  # the spec's bytes changed: read again
    assert (change.field, change.commit, change.now) == ("assert", None, "accuracy_ci[0] > 0.4")
    assert len(calls) == 2
    [cached] = history_cache.history(project, spec)
    assert cached == change and len(calls) == 2

    git(project.root, "commit", "-qam", "lower the bar")
    history_cache._head.cache_clear()  # a new process would read HEAD again
    [committed] = history_cache.history(project, spec)  # a new commit: read again
    assert committed.commit == git(project.root, "rev-parse", "--short=12", "HEAD") and len(calls) == 3


def test_a_damaged_entry_is_read_from_git_again(repo, capsys):
    project = repo
    spec = load_specs(project.specs_dir, project.root)["probe-accuracy"]
    history_cache.history(project, spec)
    entry = project.cache_dir / "history" / f"{history_cache.entry_key(project, spec)}.json"
    entry.write_text('[{"field": 1}]')
    assert history_cache.history(project, spec) == []
    assert "unreadable: reading the criterion history from git again" in capsys.readouterr().err
    assert entry.read_text().strip() == "[]"


def test_outside_git_nothing_is_cached(tmp_path):
    from claims.project import Project

    write(tmp_path / "plain")
    project = Project.at(tmp_path / "plain")
    spec = load_specs(project.specs_dir, project.root)["probe-accuracy"]
    assert history_cache.history(project, spec) == []
    assert not (project.cache_dir / "history").exists()
