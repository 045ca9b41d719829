"""The command line: parses arguments and calls into the engine. `python -m claims --help`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from claims.errors import ClaimsError
from claims.project import Project

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Project root (default: found upward from the current directory).")
@click.option("--profile", help="Run every claim on this profile (sets config profile=NAME), e.g. paper.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key in every claim and control (YAML value), repeatable.")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, profile: str | None, overrides: tuple[str, ...]) -> None:
    """Claims-verified interpretability studies.

    Every headline number is a claim (claims/specs/<id>.yaml) bound to an experiment, its
    interval, its negative control and its provenance.

    \b
    Exit codes:
      0    every selected claim stands (blocked / not-applicable claims are listed with reasons)
      1    a claim failed, errored, or is stale under --no-run; a build or gate failed
      2    bad input: a malformed spec (file:line: field: message), an unknown id, a bad option
      130  interrupted (Ctrl-C or SIGTERM): rerun to resume from the checkpoint

    \b
    Example:
      python -m claims verify                   # run what is stale, check every claim
      python -m claims verify --no-run          # CI: fail if anything would need a run
      python -m claims --profile paper verify   # the same claims on gemma-3-4b-it (GPU, hub)
    """
    project = Project.at(project_dir) if project_dir else Project.discover()
    project.activate()
    ctx.obj = project
    ctx.meta["overrides"] = _parse_overrides(overrides, profile)


def _parse_overrides(pairs: tuple[str, ...], profile: str | None) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        out[key.strip()] = yaml.safe_load(value)
    if profile:
        out["profile"] = profile
    return out


def _specs(project: Project, only: tuple[str, ...] = ()):
    from claims.spec import load_specs, with_config

    specs = load_specs(project.specs_dir, project.root)
    overrides = click.get_current_context().meta.get("overrides")
    if overrides:
        specs = {i: with_config(s, overrides) for i, s in specs.items()}
    if not only:
        return specs
    unknown = [i for i in only if i not in specs]
    if unknown:
        raise ClaimsError(f"unknown claim id(s): {', '.join(unknown)} (known: {', '.join(sorted(specs))})")
    chosen, stack = {}, list(only)
    while stack:  # a claim brings the claims it depends on
        spec = specs[stack.pop()]
        if spec.id not in chosen:
            chosen[spec.id] = spec
            stack.extend(spec.depends_on)
    return {i: s for i, s in specs.items() if i in chosen}


def _write_json(path: Path, data: dict) -> None:
    from claims.store import atomic_write_json

    atomic_write_json(path, data)


@cli.command(context_settings=CONTEXT)
@click.option("--no-run", is_flag=True, help="Never run an experiment: a stale result fails its claim.")
@click.option("--rerun", is_flag=True, help="Rerun the selected claims' experiments even when fresh.")
@click.option("--only", multiple=True, metavar="ID", help="Check only this claim (repeatable).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report (default: build/verify.json).")
@click.pass_obj
def verify(project: Project, no_run: bool, rerun: bool, only: tuple[str, ...], json_path: Path | None) -> None:
    """Run or reuse every claim's experiments, check each claim, print a table.

    Writes build/verify.json. Exit 0 when every required claim is verified, 1 otherwise.

    \b
    Example:
      python -m claims verify --only hneuron-probe-accuracy
    """
    from claims.provenance import git_state
    from claims.report import verify_table
    from claims.verify import STANDING
    from claims.verify import verify as run_verify

    if no_run and rerun:
        raise click.UsageError("--no-run and --rerun contradict each other")
    from claims.runner import Interrupted

    specs = _specs(project, only)
    try:
        outcomes, runner = run_verify(project, specs, run=not no_run, rerun=rerun)
    except (KeyboardInterrupt, Interrupted):
        click.echo("interrupted: finished results are kept, and partial work is checkpointed; "
                   "run verify again to resume", err=True)
        sys.exit(130)
    click.echo(verify_table(outcomes))
    for o in outcomes:
        for problem in o.problems:
            click.echo(f"{o.id}: {problem}", err=True)
    required = [o for o in outcomes if o.status not in ("blocked", "not_applicable")]
    standing = sum(o.status == STANDING for o in required)
    summary = {"claims": len(outcomes), "required": len(required), "verified": standing,
               "ran": [n.label for n in runner.ran], "reused": [n.label for n in runner.reused]}
    report = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "mode": "no-run" if no_run else "run",
              "only": list(only), "git": git_state(project.root), "summary": summary,
              "claims": [o.to_json() for o in outcomes]}
    out = json_path or project.build_dir / "verify.json"
    _write_json(out, report)
    click.echo(f"{standing}/{len(required)} required claims verified; "
               f"ran {len(runner.ran)}, reused {len(runner.reused)}; report: {project.rel(out)}")
    if standing != len(required):
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def status(project: Project, as_json: bool) -> None:
    """Show which experiment results are fresh, stale or missing, and why. Runs nothing.

    \b
    Example:
      python -m claims status
    """
    from claims.report import table
    from claims.status import node_reports

    reports, orphans, errors = node_reports(project, _specs(project))
    if as_json:
        click.echo(json.dumps({"nodes": [r.to_json() for r in reports], "orphans": orphans, "errors": errors}, indent=2))
    else:
        rows = [[r.label, r.state, r.reason or "-", ",".join(r.claims) or "(upstream)", r.last_run or "-"] for r in reports]
        click.echo(table(rows, ["node", "state", "why", "claims", "last run"]))
        for orphan in orphans:
            click.echo(f"orphaned artifact (no claim uses it): artifacts/{orphan}.json")
        for error in errors:
            click.echo(error, err=True)
    if errors or any(r.state != "fresh" for r in reports):
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.option("--yes", is_flag=True, help="Delete them (default: only list them).")
@click.pass_obj
def gc(project: Project, yes: bool) -> None:
    """List (or with --yes delete) stored results that no claim's experiment DAG uses any more.

    \b
    Example:
      python -m claims gc          # what would go
      python -m claims gc --yes    # delete result and sidecar of each
    """
    from claims.status import node_reports

    _, orphans, errors = node_reports(project, _specs(project))
    if errors:
        raise ClaimsError("cannot tell what is orphaned while specs have errors:\n" + "\n".join(errors))
    for orphan in orphans:
        base = project.artifacts_dir / orphan
        for path in (base.with_suffix(".json"), base.with_suffix(".provenance.json")):
            if yes:
                path.unlink(missing_ok=True)
        click.echo(f"{'deleted' if yes else 'orphaned'}: {project.rel(base.with_suffix('.json'))}")
    if not orphans:
        click.echo("no orphaned artifacts")


@cli.command(context_settings=CONTEXT)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report (default: build/coverage.json).")
@click.pass_obj
def coverage(project: Project, json_path: Path | None) -> None:
    """The CI gate: every number in content/ comes from a claim, every claim has a control or a
    written reason, every headline claim is cited, and no banned overclaiming phrase appears.

    \b
    Example:
      python -m claims coverage
    """
    from claims.coverage import run_coverage

    report = run_coverage(project, _specs(project))
    out = json_path or project.build_dir / "coverage.json"
    _write_json(out, report)
    for finding in report["findings"]:
        click.echo(f"{finding['where']}: {finding['rule']}: {finding['message']}")
    click.echo(f"coverage: {report['summary']}; report: {project.rel(out)}")
    if report["findings"]:
        sys.exit(1)


@cli.command("build-site", context_settings=CONTEXT)
@click.option("--strict", is_flag=True, help="Fail when a claim is not verified or any warning is raised.")
@click.pass_obj
def build_site(project: Project, strict: bool) -> None:
    """Render the static site to build/site/ from the claims, content/ and templates/.

    Every claim is checked again without running anything, so the site cannot disagree with the
    artifacts: a claim that is not verified is shown as failed, stale or error, never as standing.
    Unchanged pages are not rendered again. Also writes build/site/claims.json (every claim as data).

    \b
    Example:
      python -m claims verify && python -m claims build-site --strict
    """
    from site_build.build import build

    out = build(project, strict=strict)
    click.echo(f"site: {project.rel(out)}")


@cli.command("build-paper", context_settings=CONTEXT)
@click.option("--strict", is_flag=True, help="Fail when a claim is not verified or any warning is raised.")
@click.pass_obj
def build_paper(project: Project, strict: bool) -> None:
    """Assemble the paper from content/paper/*.md to build/paper/: paper.html (standalone), paper.md,
    and paper.pdf where WeasyPrint is installed. Every number comes from a claim, checked now.

    \b
    Example:
      python -m claims build-paper --strict
    """
    from paper_build.build import build

    out = build(project, strict=strict)
    click.echo(f"paper: {project.rel(out)}")


def main() -> None:
    import os

    from claims.progress import quiet

    if quiet():  # the libraries' own bars (model loading, datasets) follow ours
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    cli(prog_name="python -m claims")
