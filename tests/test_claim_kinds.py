"""A claim never says more than its evidence: null claims read as nulls everywhere, with their
power; criterion changes are shown from git; conclusions in prose are bound to the claims they
rest on; content cannot run code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.errors import BuildError
from claims.history import history
from claims.spec import load_specs
from paper_build.build import build_paper
from site_build.build import build_site
from tests.conftest import git as run_git
from tests.test_site import make, site_file

NULL_SPEC = """
id: random-steering-null
title: Random neurons do not steer
statement: Random neurons move compliance by {slope:+.2f} pp per alpha ({slope_ci[0]:+.2f} to {slope_ci[1]:+.2f}).
experiment: fx_sample_probe
config: {shift: 0.0}
metric: slope
uncertainty: {method: analytic, level: 0.95}
assert: "abs(slope) < 5"
expect: null
power:
  margin: 2.0
  why: An effect of two points per unit of alpha is the smallest a steering method would be used for.
control:
  experiment: fx_sample_probe
  config: {shift: 0.01}
  description: Another draw of random neurons.
  assert: "abs(slope - control.slope) < 1"
section: steering
"""


def cli_run(project, *args):
    return CliRunner().invoke(cli, ["--project", str(project.root), *args], catch_exceptions=False)


@pytest.fixture
def with_null(tmp_path):
    return make(tmp_path, {"random-steering-null": NULL_SPEC})


def test_a_null_claim_reads_as_a_null_everywhere(with_null):
    project = with_null
    out = cli_run(project, "verify")
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if line.startswith("random-steering-null"))
    assert "within control range (null)" in row and "verified" in row
    build_paper(project)
    build_site(project)
    page = site_file(project, "claims/random-steering-null.html")
    assert "within control range" in page and "beats control" not in page
    assert "expects a null: the effect must lie within the control&#39;s range or an equivalence margin" in page
    assert "equivalent to zero: the interval" in page and "lies within ±2" in page
    assert "An effect of two points per unit of alpha is the smallest" in page
    paper_md = (project.build_dir / "paper" / "paper.md").read_text()
    row = next(line for line in paper_md.splitlines() if "`random-steering-null`" in line)
    assert "within control range (null claim)" in row and "beaten" not in row
    entry = next(c for c in json.loads(site_file(project, "claims.json"))["claims"] if c["id"] == "random-steering-null")
    assert entry["expect"] == "null" and entry["verdict"] == "within control range"
    assert entry["power"]["holds"] is True and entry["power"]["margin"] == 2.0
    effect = next(c for c in json.loads(site_file(project, "claims.json"))["claims"] if c["id"] == "probe-accuracy")
    assert effect["expect"] == "effect" and effect["verdict"] == "beats control"
    assert "beats control" in site_file(project, "index.html")


@pytest.mark.parametrize(
    ("power", "problem"),
    [
        ("power:\n  margin: 0.1\n  why: tight", "null not shown: the interval"),
        ("power:\n  margin: 0.5\n  mde: \"slope_ci[1] - slope_ci[0]\"\n  why: mde",
         "underpowered null: the minimum detectable effect"),
    ],
)
def test_an_underpowered_null_does_not_stand(tmp_path, power, problem):
    spec = NULL_SPEC.replace("power:\n  margin: 2.0\n  why: An effect of two points per unit of alpha is the smallest "
                             "a steering method would be used for.", power)
    project = make(tmp_path, {"random-steering-null": spec})
    out = cli_run(project, "verify")
    assert out.exit_code == 1 and problem in out.output
    build_site(project)
    page = site_file(project, "claims/random-steering-null.html")
    assert "not shown equivalent" in page or "underpowered: the smallest detectable effect" in page


def test_the_mde_form_of_power_stands_when_the_design_could_see_the_margin(tmp_path):
    spec = NULL_SPEC.replace("  margin: 2.0\n", "  margin: 2.0\n  mde: \"slope_ci[1] - slope_ci[0]\"\n")
    project = make(tmp_path, {"random-steering-null": spec})
    assert cli_run(project, "verify").exit_code == 0
    report = json.loads((project.build_dir / "verify.json").read_text())
    power = next(c for c in report["claims"] if c["id"] == "random-steering-null")["power"]
    assert power["holds"] is True and power["mde"] < 2.0
    assert power["text"].startswith("informative: the smallest detectable effect")


def test_a_blocked_claim_is_named_on_the_site_and_in_the_export(tmp_path):
    failing = "\n".join(line if not line.startswith('assert: "accuracy_ci[0] > 0.5"') else 'assert: "accuracy_ci[0] > 0.99"'
                        for line in make.__globals__["sample"].SPECS["probe-accuracy"].splitlines())
    dependant = NULL_SPEC + "depends_on: [probe-accuracy]\n"
    project = make(tmp_path, {"probe-accuracy": failing, "random-steering-null": dependant})
    out = cli_run(project, "verify")
    assert out.exit_code == 1
    assert "random-steering-null: blocked: depends on 'probe-accuracy' (failed)" in out.output
    build_site(project)
    entry = next(c for c in json.loads(site_file(project, "claims.json"))["claims"] if c["id"] == "random-steering-null")
    assert entry["status"] == "blocked" and entry["blocked_by"] == ["probe-accuracy"]
    page = site_file(project, "claims/random-steering-null.html")
    assert "Why it is blocked" in page and 'href="probe-accuracy.html"><code>probe-accuracy</code></a>' in page


# ---- criterion history --------------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path, git_env):
    project = make(tmp_path)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "specs and first results")
    return project


def git(project, *args):
    return run_git(project.root, *args)


def edit_spec(project, claim_id, old, new):
    path = project.specs_dir / f"{claim_id}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_criterion_loosened_after_results_is_shown(repo):
    project = repo
    edit_spec(project, "probe-accuracy", 'assert: "accuracy_ci[0] > control.accuracy_ci[1]"',
              'assert: "accuracy > control.accuracy"')
    git(project, "commit", "-qam", "loosen the control assertion")
    commit = git(project, "rev-parse", "--short=12", "HEAD")
    specs = load_specs(project.specs_dir, project.root)
    [change] = history(project, specs["probe-accuracy"])
    assert (change.field, change.commit, change.after_results) == ("control.assert", commit, True)
    assert change.was == "accuracy_ci[0] > control.accuracy_ci[1]" and change.now == "accuracy > control.accuracy"
    cli_run(project, "verify")
    build_site(project)
    page = site_file(project, "claims/probe-accuracy.html")
    assert "criterion changed after results" in page and f"commit <code>{commit}</code>" in page
    assert "no reason recorded" in page
    entry = next(c for c in json.loads(site_file(project, "claims.json"))["claims"] if c["id"] == "probe-accuracy")
    assert entry["criterion_history"][0]["field"] == "control.assert"
    out = cli_run(project, "status")
    assert "criterion changed: probe-accuracy: control.assert changed after results" in out.output


def test_a_preregistered_claim_fails_the_gate_until_the_change_is_explained(repo):
    project = repo
    edit_spec(project, "probe-accuracy", "headline: true", "headline: true\npreregistered: true")
    git(project, "commit", "-qam", "preregister")
    assert cli_run(project, "coverage").exit_code == 0
    edit_spec(project, "probe-accuracy", 'assert: "accuracy_ci[0] > 0.5"', 'assert: "accuracy_ci[0] > 0.4"')
    out = cli_run(project, "coverage")  # uncommitted: already a finding
    assert out.exit_code == 1 and "criterion-changed: preregistered claim 'probe-accuracy': assert changed in the " \
                                  "work tree" in out.output
    git(project, "commit", "-qam", "lower the bar")
    out = cli_run(project, "coverage")
    assert out.exit_code == 1 and "assert changed in " in out.output
    edit_spec(project, "probe-accuracy", "preregistered: true", "preregistered: true\ncriterion_changes:\n"
              "  - field: assert\n    was: accuracy_ci[0] > 0.5\n    why: the test split turned out smaller than planned")
    assert cli_run(project, "coverage").exit_code == 0


# ---- prose ----------------------------------------------------------------------------------------------
def test_content_html_is_text_and_templates_cannot_reach_python(tmp_path):
    project = make(tmp_path, content={"content/story.md": "# Story\n\n<script>alert('x')</script> and "
                                                           "<img src=x onerror=alert(1)>\n"})
    build_site(project)
    story = site_file(project, "story.html")
    assert "<script>alert" not in story and "&lt;script&gt;alert" in story and "<img src=x" not in story
    for body in ("{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
                 "{{ claim('probe-accuracy').record.spec_path }}",
                 "{{ claim('probe-accuracy').cit.study }}"):
        project = make(tmp_path / body[:12].replace("(", "").replace("'", ""), content={"content/story.md": "# S\n\n" + body})
        with pytest.raises(BuildError, match=r"content/story.md:3: SecurityError"):
            build_site(project)


def test_a_conclusion_on_a_failed_claim_is_struck_through(tmp_path):
    conclusion = ('{% rests_on "probe-accuracy", "steering-slope" %}\nSo the probe detects and steers.\n'
                  "{% endrests_on %}\n")
    ok = make(tmp_path / "ok", content={"content/story.md": "# Story\n\n" + conclusion})
    build_site(ok, strict=True)
    assert "<p>So the probe detects and steers.</p>" in site_file(ok, "story.html")
    assert "Withdrawn" not in site_file(ok, "story.html")
    failing = make.__globals__["sample"].SPECS["probe-accuracy"].replace('"accuracy_ci[0] > 0.5"', '"accuracy_ci[0] > 0.99"')
    bad = make(tmp_path / "bad", {"probe-accuracy": failing}, {"content/story.md": "# Story\n\n" + conclusion})
    report = build_site(bad)
    story = site_file(bad, "story.html")
    assert '<div class="rests-on not-standing"><p class="withdrawn-note">Withdrawn: this conclusion rests on claims ' \
           "that do not stand (&#39;probe-accuracy&#39; is failed)." in story
    assert '<div class="withdrawn">\n<p>So the probe detects and steers.</p>\n</div></div>' in story
    assert any("content/story.md:3: a conclusion rests on claims that do not stand" in w for w in report.warnings)
    with pytest.raises(BuildError, match="content/story.md:3: a conclusion rests on claims that do not stand"):
        build_site(bad, strict=True)
    bad.content_dir.joinpath("paper", "01-x.md").write_text("# Paper\n\n" + conclusion)
    build_paper(bad)
    assert "> ~~So the probe detects and steers.~~" in (bad.build_dir / "paper" / "paper.md").read_text()
