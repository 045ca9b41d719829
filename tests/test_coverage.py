"""The coverage gate: hand-typed numbers, uncited headlines, unknown ids, banned phrases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from claims.cli import cli
from claims.coverage import prose_numbers
from tests.conftest import MEAN, MEAN_SPEC, git


@pytest.fixture(autouse=True)
def _in_git(git_env):
    """The gate reads the criterion history from git: every fixture project is a repository."""


def gate(fx):
    if not (fx.root / ".git").exists():
        git(fx.root, "init", "-q")
    git(fx.root, "add", "-A")
    git(fx.root, "commit", "-qm", "snapshot", "--allow-empty")
    result = CliRunner().invoke(cli, ["--project", str(fx.root), "coverage"])
    report = json.loads((fx.root / "build" / "coverage.json").read_text())
    return result, report


def headline_project(fx):
    fx.module("fx_mean", MEAN)
    fx.spec("mean-shift", MEAN_SPEC.format(id="mean-shift", shift=1.0) + "headline: true\n"
            "why_no_baseline: a fixture of the prose rules\nwaiver: a fixture of the prose rules, never run\n")
    return fx


def test_clean_content_passes(fx):
    headline_project(fx)
    fx.write("content/index.md", """
        # Results

        The shift is {{ claim("mean-shift").value | pct }} (see `run 2`).
        Gemma 3 is the model family.
        """)
    fx.write("content/allowed-numbers.yaml", "- phrase: Gemma 3\n  reason: model family name, not a measurement\n")
    result, report = gate(fx)
    assert result.exit_code == 0, result.output
    assert report["findings"] == []
    assert report["cited"] == {"mean-shift": ["content/index.md:3"]}


def test_hand_typed_number_is_flagged_with_file_line(fx):
    headline_project(fx)
    fx.write("content/index.md", 'Cites {{ claim("mean-shift") }}.\n\nThe probe reaches 76.5% accuracy.\n')
    result, report = gate(fx)
    assert result.exit_code == 1
    assert "content/index.md:3: number-without-claim: '76.5%' is typed by hand" in result.output


def test_uncited_headline_and_unknown_claim(fx):
    headline_project(fx)
    fx.write("content/story.md", 'See {{ claim("no-such-claim") }}.\n')
    result, report = gate(fx)
    rules = sorted(f["rule"] for f in report["findings"])
    assert rules == ["headline-not-cited", "unknown-claim"]
    assert "content/story.md:1: unknown-claim" in result.output


def test_banned_phrase(fx):
    headline_project(fx)
    fx.write("content/index.md", '{{ claim("mean-shift") }} proves the neurons cause it.\nNo CI yet for that.\n')
    result, report = gate(fx)
    messages = [f["where"] + " " + f["message"] for f in report["findings"]]
    assert "content/index.md:1 overclaiming phrase 'proves'" in messages
    assert "content/index.md:2 overclaiming phrase 'no CI yet'" in messages


def test_allowed_numbers_need_a_reason(fx):
    headline_project(fx)
    fx.write("content/allowed-numbers.yaml", "- phrase: Gemma 3\n")
    result, _ = CliRunner().invoke(cli, ["--project", str(fx.root), "coverage"]), None
    assert result.exit_code == 2
    assert "allowed-numbers.yaml: entry 1 needs a phrase and a reason" in result.output


def test_prose_numbers_masks_code_jinja_links_and_headings():
    text = (
        "# Section 2\n"
        "```\nx = 3.5\n```\n"
        "Value {{ claim('a').ci[0] }} and `12` and [link](https://x.org/v2/3) and 18 layers.\n"
        "Footnote[^1] 40%.\n"
    )
    assert prose_numbers(text, []) == [(5, "18"), (6, "40%")]
