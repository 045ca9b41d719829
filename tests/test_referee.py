"""The engine checks what a referee checks (claims/referee.py, claims/history.py, claims/items.py,
claims/audit.py): baselines, balance, draw floors and sidedness, headroom, positive controls,
per-item rows with `claims recompute`, blind audit sheets, and a gate that cannot be talked around."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from claims.cli import cli
from tests.conftest import git

# An experiment whose estimates and values come from its config, so a table of specs can put any
# number where a check looks; it saves per-item rows and can rebuild its estimate from them.
REF = '''
import numpy as np

from claims import Estimate, Result


def recompute(items, config):
    x = np.array([r["y"] for r in items["rows"]], dtype=float)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    return {"effect": Estimate(value=float(x.mean()), ci=(float(x.mean() - half), float(x.mean() + half)),
                               level=0.95, n=len(x), method="analytic-normal")}


def run(config, ctx):
    rng = np.random.default_rng(config.get("seed", 0))
    y = rng.normal(config.get("effect", 1.0), config.get("sd", 1.0), size=config.get("n", 200))
    ctx.save_items("rows", [{"id": i, "y": float(v)} for i, v in enumerate(y)])
    estimates = recompute(ctx.item_rows, config)
    for name, (value, low, high) in config.get("estimates", {}).items():
        estimates[name] = Estimate(value=value, ci=(low, high), level=0.95, n=100, method="analytic-normal")
    return Result(estimates=estimates, values=config.get("values", {}))
'''

SPEC = """
id: {id}
title: A referee's fixture
statement: The effect is {{effect:.2f}} ({{effect_ci[0]:.2f}} to {{effect_ci[1]:.2f}}).
experiment: fx_ref
config: {config}
metric: effect
uncertainty: {{method: analytic, level: 0.95}}
assert: "{assert_}"
{extra}
"""

CONTROL = """
control:
  experiment: fx_ref
  config: {config}
  assert: "{assert_}"
{extra}
"""


def spec(claim_id="c", config="{effect: 1.0}", assert_="effect_ci[0] > 0", extra="", control=None):
    text = SPEC.format(id=claim_id, config=config, assert_=assert_, extra=extra)
    if control is None:
        return text + "control: none\nwhy_no_control: a fixture\n"
    return text + CONTROL.format(**control)


def cli_run(fx, *args):
    return CliRunner().invoke(cli, ["--project", str(fx.root), *args], catch_exceptions=False)


@pytest.fixture
def ref(fx):
    fx.module("fx_ref", REF)
    return fx


def verify_one(fx, text, claim_id="c"):
    fx.spec(claim_id, text)
    out = cli_run(fx, "verify", "--json", str(fx.root / "v.json"))
    report = json.loads((fx.root / "v.json").read_text())
    return out, next(c for c in report["claims"] if c["id"] == claim_id)


CASES = [
    # (what, spec text, status, a line the output must carry)
    ("an unbalanced control fails naming the covariate",
     spec(control={"config": "{effect: 0.0, values: {balance: {activity: 0.35, layer: 0.0}}}",
                   "assert_": "effect_ci[0] > control.effect_ci[1]",
                   "extra": "  matched_on: [activity, layer]"}),
     "failed", "control.matched_on.activity: the control is not balanced on 'activity': 0.35 is beyond the tolerance 0.1"),
    ("a balance the control does not report fails",
     spec(control={"config": "{effect: 0.0, values: {balance: {layer: 0.0}}}",
                   "assert_": "effect_ci[0] > control.effect_ci[1]", "extra": "  matched_on: {kl: 0.2}"}),
     "failed", "the control's result reports no balance for 'kl'"),
    ("a balanced control stands",
     spec(control={"config": "{effect: 0.0, values: {balance: {activity: -0.04, kl: 0.15}}}",
                   "assert_": "effect_ci[0] > control.effect_ci[1]",
                   "extra": "  matched_on: {activity: 0.1, kl: 0.2}"}),
     "verified", ""),
    ("8 draws cannot give rank p <= 0.05",
     spec(control={"config": "{effect: 0.0, values: {rank_p: 0.111, seeds: 8}}",
                   "assert_": "control.rank_p <= 0.2", "extra": "  rank: {draws: seeds, sided: one, alpha: 0.05}"}),
     "failed", "8 draws cannot give a one-sided rank p at or below 0.05 (the smallest is 0.111)"),
    ("a two-sided p needs twice the draws",
     spec(control={"config": "{effect: 0.0, values: {rank_p: 0.06, seeds: 32}}",
                   "assert_": "control.rank_p <= 0.1", "extra": "  rank: {draws: seeds, sided: two, alpha: 0.05}"}),
     "failed", "32 draws cannot give a two-sided rank p at or below 0.05 (the smallest is 0.0606)"),
    ("a control is never beaten above the threshold, whatever its assertion says",
     spec(control={"config": "{effect: 0.0, values: {rank_p: 0.09, seeds: 100}}",
                   "assert_": "control.rank_p <= 0.1", "extra": "  rank: {draws: seeds, sided: one, alpha: 0.05}"}),
     "failed", "rank p 0.09 is above 0.05: the control is not beaten"),
    ("too few draws for the kind of control",
     spec(control={"config": "{effect: 0.0, values: {rank_p: 0.01, seeds: 99}}",
                   "assert_": "control.rank_p <= 0.05",
                   "extra": "  rank: {draws: seeds, sided: one, min_draws: 100}"}),
     "failed", "99 draws, fewer than the 100 this control needs"),
    ("a null whose margin reaches 100 % is refused",
     spec(config="{effect: 0.0, values: {unsteered: 0.92}}", assert_="abs(effect) < 1",
          extra="expect: null\npower: {margin: 0.08, why: a fixture}\n"
                "headroom: {rate: unsteered, range: [0, 1]}"),
     "failed", "uninformative null: the rate unsteered = 0.92 leaves 0.08 of room up to 1"),
    ("a null tested only downwards needs room only downwards",
     spec(config="{effect: 0.0, sd: 0.1, values: {unsteered: 0.92}}", assert_="abs(effect) < 1",
          extra="expect: null\npower: {margin: 0.08, why: a fixture}\n"
                "headroom: {rate: unsteered, range: [0, 1], sides: down}"),
     "verified", ""),
    ("an equivalence margin centres on its reference and stays in range",
     spec(config="{effect: 0.5, sd: 0.1}", assert_="effect_ci[0] > 0",
          extra="expect: null\npower: {margin: 0.5, why: a fixture}\nrange: [0, 1]\nreference: 0.5"),
     "failed", "the margin ±0.5 around 0.5 reaches the bound of the range [0, 1]"),
    ("a claim that does not beat its strongest baseline fails",
     spec(config="{effect: 1.0, estimates: {gain_over_length: [0.1, -0.05, 0.25], gain_over_conf: [0.4, 0.2, 0.6]}}",
          extra="baselines:\n  - {label: answer length, difference: gain_over_length}\n"
                "  - {label: confidence, difference: gain_over_conf}"),
     "failed", "the claim does not beat the strongest baseline, 'answer length'"),
    ("a claim that says it does not beat its baseline stands when it does not",
     spec(config="{effect: 1.0, estimates: {gain_over_length: [0.1, -0.05, 0.25]}}",
          extra="baselines:\n  - {label: answer length, difference: gain_over_length}\nversus_baseline: does_not_beat"),
     "verified", ""),
    ("a positive control reads detected or missed",
     spec(control={"config": "{effect: 2.0}", "assert_": "control.effect_ci[0] > 1", "extra": "  role: positive"}),
     "verified", ""),
    ("an audit labelled with the judge's verdict in sight fails",
     spec(config="{values: {labeller: a hand, blind: false, unique_items: 96}}", extra="audit: {min_unique: 200}"),
     "failed", "the labels were not made blind to the judge"),
]


@pytest.mark.parametrize("what,text,status,line", CASES, ids=[c[0] for c in CASES])
def test_the_referee_checks(ref, what, text, status, line):
    out, claim = verify_one(ref, text)
    assert claim["status"] == status, out.output
    assert line in out.output
    if status == "verified":
        assert out.exit_code == 0


def test_a_statement_can_cite_the_strongest_baseline_the_engine_found(ref):
    text = CASES[10][1].replace(
        "statement: The effect is {effect:.2f} ({effect_ci[0]:.2f} to {effect_ci[1]:.2f}).",
        "statement: The effect is {effect:.2f}; over the strongest baseline, {strongest_baseline.label}, "
        "{strongest_baseline.difference:+.2f} ({strongest_baseline.difference_ci[0]:+.2f} to "
        "{strongest_baseline.difference_ci[1]:+.2f}).")
    assert text != CASES[10][1]
    _, claim = verify_one(ref, text)
    assert "over the strongest baseline, answer length, +0.10 (-0.05 to +0.25)." in claim["statement"]


def test_verdict_words_follow_the_checks(ref):
    _, claim = verify_one(ref, CASES[12][1])
    assert claim["verdict"] == "detected"
    _, claim = verify_one(ref, CASES[10][1])
    assert claim["baseline_verdict"] == "does not beat the strongest baseline (answer length)"
    assert [b["label"] for b in claim["baselines"] if b.get("strongest")] == ["answer length"]
    _, claim = verify_one(ref, CASES[5][1])
    assert claim["verdict"] == "control not beaten"  # never "beats control" beside p = 0.09
    _, claim = verify_one(ref, CASES[0][1])
    assert claim["verdict"] == "control not valid (not balanced on activity)"
    assert claim["balance"]["layer"] == {"achieved": 0.0, "tolerance": 0.1, "ok": True}
    _, claim = verify_one(ref, CASES[3][1])
    assert claim["verdict"] == "control not valid (too few draws)"
    assert claim["rank"]["smallest_p"] == pytest.approx(1 / 9)


def test_a_waived_failure_is_shown_and_does_not_fail_verify(ref):
    text = CASES[10][1] + "waiver: the length baseline is redesigned in the next round\nheadline: true\n"
    out, claim = verify_one(ref, text)
    assert claim["status"] == "failed" and claim["waiver"].startswith("the length baseline")
    assert out.exit_code == 0 and "shown under a waiver" in out.output


# ---- per-item rows and recompute ---------------------------------------------------------------

def test_recompute_matches_and_an_edited_row_is_caught(ref):
    ref.spec("c", spec())
    assert cli_run(ref, "verify").exit_code == 0
    out = cli_run(ref, "recompute", "c")
    assert out.exit_code == 0 and "every estimate recomputed from the committed rows matches" in out.output
    [path] = (ref.root / "artifacts" / "fx_ref").glob("*.items/rows.jsonl.gz")
    rows = gzip.decompress(path.read_bytes()).decode().splitlines()
    row = json.loads(rows[0])
    row["y"] += 5.0
    rows[0] = json.dumps(row, sort_keys=True)
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0))
    out = cli_run(ref, "recompute", "c")
    assert out.exit_code == 1
    assert "does not match the sidecar's hash: a row was edited" in out.output
    assert "DIFFERS" in out.output  # and the number it gives is not the committed one
    out = cli_run(ref, "verify", "--no-run")
    assert out.exit_code == 1 and "a row was edited" in out.output


def test_a_headline_without_rows_fails(ref):
    ref.module("fx_norows", REF.replace('    ctx.save_items("rows", [{"id": i, "y": float(v)} for i, v in enumerate(y)])\n',
                                        "    ctx.item_rows = {'rows': [{'y': float(v)} for v in y]}\n"))
    text = spec().replace("experiment: fx_ref", "experiment: fx_norows") + "headline: true\nwhy_no_baseline: fixture\n"
    out, claim = verify_one(ref, text)
    assert claim["status"] == "failed" and "commits no per-item rows" in out.output


def test_rows_that_do_not_give_back_the_estimate_fail_the_run(ref):
    ref.module("fx_liar", REF.replace("estimates = recompute(ctx.item_rows, config)",
                                      "estimates = recompute(ctx.item_rows, config)\n"
                                      "    estimates['effect'] = estimates['effect'].model_copy(update={'value': "
                                      "estimates['effect'].ci[0]})"))
    out, claim = verify_one(ref, spec().replace("experiment: fx_ref", "experiment: fx_liar"))
    assert claim["status"] == "error" and "its per-item rows do not give back its estimates" in out.output


# ---- blind audits ---------------------------------------------------------------------------------

def test_the_audit_sheet_hides_every_verdict(ref, tmp_path):
    ref.spec("c", spec())
    rows = [{"id": i // 2, "task": ["pushback", "compliance"][i % 2], "answer": f"text {i // 2}",
             "judge_strict": "yes", "judge_lenient": "no"} for i in range(600)]
    src = tmp_path / "rows.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    out = CliRunner().invoke(cli, ["--project", str(ref.root), "audit-sheet", str(src), "--id", "id", "--show",
                                   "answer", "--hide", "judge_strict,judge_lenient", "--strata", "task", "--n", "200",
                                   "--out", str(tmp_path / "audit")])
    assert out.exit_code == 0, out.output
    sheet = (tmp_path / "audit" / "sheet.csv").read_text()
    assert "judge" not in sheet and "yes" not in sheet and "task" not in sheet.splitlines()[0]
    with open(tmp_path / "audit" / "key.csv") as handle:
        key = list(csv.DictReader(handle))
    assert len({k["id"] for k in key}) == 200  # unique items, never the same one twice
    meta = json.loads((tmp_path / "audit" / "sheet.json").read_text())
    assert meta["blind"] is True and meta["unique_items"] == 200
    out = CliRunner().invoke(cli, ["--project", str(ref.root), "audit-sheet", str(src), "--id", "id", "--show",
                                   "answer,judge_strict", "--hide", "judge_strict", "--n", "10", "--out",
                                   str(tmp_path / "a2")])
    assert out.exit_code != 0 and "a field the labeller sees cannot be a hidden verdict" in out.output


# ---- the gate ---------------------------------------------------------------------------------------

@pytest.fixture
def repo(ref, git_env):
    ref.write("content/index.md", '# Study\n\n{{ claim("c") }}\n')
    git(ref.root, "init", "-q")
    return ref


def commit(fx, message="x"):
    git(fx.root, "add", "-A")
    git(fx.root, "commit", "-qm", message)


def coverage(fx):
    return cli_run(fx, "coverage")


def test_a_headline_effect_without_baselines_fails_coverage(repo):
    repo.spec("c", spec() + "headline: true\n")
    commit(repo)
    out = coverage(repo)
    assert out.exit_code == 1 and "baseline-missing: headline claim 'c' expects an effect but names no baselines" \
        in out.output


def test_a_blocked_headline_needs_a_waiver_and_then_keeps_its_card(repo):
    from site_build.build import build_site

    repo.spec("c", spec() + "headline: true\nwhy_no_baseline: a fixture\nstatus: blocked\nreason: not run\n")
    commit(repo)
    out = coverage(repo)
    assert out.exit_code == 1 and "headline-not-standing: headline claim 'c' is blocked: not run" in out.output
    path = repo.root / "specs" / "c.yaml"
    path.write_text(path.read_text() + "waiver: shown while its run waits for the GPU\n")
    commit(repo)
    assert coverage(repo).exit_code == 0
    build_site(repo.project)
    index = (repo.root / "build" / "site" / "index.html").read_text()
    card = index.split('class="card', 1)[1] if 'class="card' in index else ""
    assert 'href="claims/c.html"' in index and "waived" in index.lower()
    assert "shown while its run waits for the GPU" in index or "claims/c.html" in card


def test_dropping_preregistered_while_loosening_the_assert_is_reported(repo):
    repo.spec("c", spec() + "preregistered: true\n")
    commit(repo, "preregister")
    cli_run(repo, "verify")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "results")
    text = (repo.root / "specs" / "c.yaml").read_text()
    (repo.root / "specs" / "c.yaml").write_text(text.replace("preregistered: true\n", "").replace(
        "effect_ci[0] > 0", "effect > -1"))
    commit(repo, "quietly")
    out = coverage(repo)
    assert out.exit_code == 1
    assert "preregistered claim 'c': assert changed in" in out.output
    assert "preregistered claim 'c': preregistered changed in" in out.output


def test_swapping_the_experiment_is_a_criterion_change(repo):
    repo.module("fx_other", REF)
    repo.spec("c", spec() + "preregistered: true\n")
    commit(repo)
    path = repo.root / "specs" / "c.yaml"
    path.write_text(path.read_text().replace("experiment: fx_ref", "experiment: fx_other"))
    commit(repo)
    out = coverage(repo)
    assert out.exit_code == 1 and "experiment changed in" in out.output


def test_dropping_a_dependency_that_blocks_is_a_criterion_change(repo):
    repo.spec("d", spec("d"))
    repo.spec("c", spec() + "preregistered: true\ndepends_on: [d]\n")
    commit(repo)
    path = repo.root / "specs" / "c.yaml"
    path.write_text(path.read_text().replace("depends_on: [d]\n", ""))
    commit(repo, "unblock quietly")
    out = coverage(repo)
    assert out.exit_code == 1 and "depends_on changed in" in out.output
    path.write_text(path.read_text() + "criterion_changes:\n  - {field: depends_on, why: the dependency measured another thing}\n")
    commit(repo, "say why")
    assert coverage(repo).exit_code == 0


@pytest.mark.parametrize("note,message", [
    ('{commit: "abcdef1", why: made up}', "commit abcdef1 does not exist in this repository"),
    ("{field: range, why: never changed}", "range never changed in this claim's history"),
])
def test_a_criterion_note_must_name_a_real_change(repo, note, message):
    repo.spec("c", spec() + f"criterion_changes:\n  - {note}\n")
    commit(repo)
    out = coverage(repo)
    assert out.exit_code == 1 and message in out.output


def test_a_note_cannot_excuse_a_change_made_after_it(repo):
    repo.spec("c", spec() + "preregistered: true\n")
    commit(repo)
    path = repo.root / "specs" / "c.yaml"
    path.write_text(path.read_text().replace("effect_ci[0] > 0", "effect_ci[0] > -1")
                    + "criterion_changes:\n  - {field: assert, why: a smaller test set}\n")
    commit(repo)
    assert coverage(repo).exit_code == 0
    path.write_text(path.read_text().replace("effect_ci[0] > -1", "effect > -5"))
    commit(repo, "loosen again under the old note")
    out = coverage(repo)
    assert out.exit_code == 1 and "assert changed in" in out.output


def test_a_shallow_clone_cannot_check_the_history(repo, tmp_path):
    repo.spec("c", spec())
    commit(repo)
    commit_again = repo.root / "content" / "more.md"
    commit_again.write_text("# More\n")
    commit(repo)
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone))
    out = CliRunner().invoke(cli, ["--project", str(clone), "coverage"], catch_exceptions=False)
    assert out.exit_code == 1
    assert "history-unavailable: the criterion history cannot be checked: a shallow clone" in out.output


def test_an_untracked_module_makes_the_result_dirty_and_publish_strict_refuses(repo, tmp_path):
    repo.spec("c", spec())
    git(repo.root, "add", "specs", "content", "pyproject.toml")  # fx_ref.py is left untracked
    git(repo.root, "commit", "-qm", "specs only")
    assert cli_run(repo, "verify").exit_code == 0
    [sidecar] = (repo.root / "artifacts" / "fx_ref").glob("*.provenance.json")
    state = json.loads(sidecar.read_text())["git"]
    assert state["dirty"] is True and state["untracked"] == ["fx_ref.py"]
    env = {**os.environ, "PYTHON": sys.executable}
    script = Path(__file__).resolve().parents[1] / "publish.sh"
    out = subprocess.run(["bash", str(script), "--strict", "--project", str(repo.root), str(tmp_path / "www")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "uncommitted changes: c" in out.stderr


def test_a_statement_that_prints_a_rank_p_must_declare_its_draws(ref):
    text = spec(control={"config": "{effect: 0.0, values: {rank_p: 0.111, n: 8}}",
                         "assert_": "effect_ci[0] > control.effect_ci[1]", "extra": ""})
    text = text.replace("({{effect_ci[1]:.2f}})", "").replace(
        "statement: The effect is", "statement: Rank p {control.rank_p:.2f}; the effect is")
    ref.spec("c", text)
    out = cli_run(ref, "verify")
    assert out.exit_code == 2
    assert "the statement prints control.rank_p: declare control.rank" in out.output


DOWN = '''
from claims import Result


def requires(config):
    return {"up": ("fx_ref", {"effect": 2.0, "n": 50})}


def run(config, ctx):
    rows = ctx.upstream("up").items("rows")
    return Result(values={"n": len(rows), "mean": sum(r["y"] for r in rows) / len(rows)})
'''


def test_a_downstream_node_reads_its_upstreams_rows_and_an_edited_row_stops_it(ref):
    from claims.errors import ExperimentError
    from claims.experiment import make_node
    from claims.project import Project
    from claims.runner import Runner

    ref.module("fx_down", DOWN)
    project = Project.discover(ref.root)
    project.activate()
    runner = Runner(project)
    down = runner.ensure(make_node("fx_down", {}, "test"))
    assert down.result.values["n"] == 50 and abs(down.result.values["mean"] - 2.0) < 0.5
    up_node = make_node("fx_ref", {"effect": 2.0, "n": 50}, "test")
    state = runner.assess(up_node)
    from claims.context import Upstream

    upstream = Upstream("up", up_node, state.result, runner.store)
    rows = upstream.items("rows")
    assert len(rows) == 50 and abs(sum(r["y"] for r in rows) / 50 - 2.0) < 0.5
    with pytest.raises(ExperimentError, match="commits no per-item rows 'other'"):
        upstream.items("other")
    [path] = (ref.root / "artifacts" / "fx_ref").glob("*.items/rows.jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines[0] = lines[0].replace('"y": ', '"y": 1')
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    with pytest.raises(ExperimentError, match="no longer matches its sidecar's sha256"):
        upstream.items("rows")
