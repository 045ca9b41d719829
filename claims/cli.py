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
NO_PROJECT = ("init", "reference")  # commands that run outside a project


@click.group(context_settings=CONTEXT)
@click.option("--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Project root (default: found upward from the current directory).")
@click.option("--profile", help="Run every claim on this profile (sets config profile=NAME), e.g. paper.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key in every claim and control (YAML value), repeatable.")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, profile: str | None, overrides: tuple[str, ...]) -> None:
    """Claims-verified studies: every number a reader sees is a claim (specs/<id>.yaml) bound to an
    experiment, its interval, its negative control and its provenance, checked before the site and
    the paper show it. Start a project with `python -m claims init DIR`.

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
      python -m claims --profile paper verify   # every config gets profile=paper (the project's)
    """
    ctx.meta["overrides"] = _parse_overrides(overrides, profile)
    if ctx.invoked_subcommand in (None, *NO_PROJECT) or "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        return
    project = Project.at(project_dir) if project_dir else Project.discover()
    project.check()
    project.activate()
    ctx.obj = project


def _parse_overrides(pairs: tuple[str, ...], profile: str | None) -> dict:
    import yaml

    from claims.provenance import REDACTED, redact_text
    from claims.spec import check_config_values, secret_key

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        shown = f"{key}={REDACTED}" if secret_key(key) else redact_text(pair)
        if not sep or not key:
            raise click.BadParameter(f"{shown!r} is not KEY=VALUE", param_hint="--set")
        if secret_key(key):
            raise click.BadParameter(f"{shown!r}: {key!r} looks like a secret; pass secrets through the "
                                     "environment, never a config (configs are recorded)", param_hint="--set")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise click.BadParameter(f"{shown!r}: cannot parse the value ({problem})", param_hint="--set") from None
        problems = check_config_values({key: parsed})
        if problems:
            raise click.BadParameter(f"{shown!r}: {problems[0].removeprefix('config.')}", param_hint="--set")
        out[key] = parsed
    if profile:
        out["profile"] = profile
    return out


def work_begins() -> None:
    """Start-up is over: from here a Ctrl-C raises KeyboardInterrupt, so that what is being written
    is cleaned up or checkpointed before exit 130 (claims/__main__.py stops start-up at once; see
    claims/interrupt.py for why it is not Python's own handler)."""
    from claims import interrupt

    interrupt.begin()


def _specs(project: Project, only: tuple[str, ...] = (), apply_overrides: bool = True):
    from claims.spec import load_specs, with_config

    specs = load_specs(project.specs_dir, project.root)
    work_begins()
    overrides = click.get_current_context().meta.get("overrides") if apply_overrides else None
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


def _check_writable(path: Path, what: str) -> None:
    """Fail before any work when a report could not be written (exit 2, one line)."""
    import os

    if path.is_dir():
        raise ClaimsError(f"{what} {path} is a folder; give a file path")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ClaimsError(f"{what} {path} cannot be written ({parent or path.parent} is not a writable folder)")


@cli.command(context_settings=CONTEXT)
@click.option("--no-run", is_flag=True, help="Never run an experiment: a stale result fails its claim.")
@click.option("--rerun", is_flag=True, help="Rerun the selected claims' experiments even when fresh.")
@click.option("--only", multiple=True, metavar="ID", help="Check only this claim (repeatable).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report (default: build/verify.json).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where stale experiments run: in this process, or as Ray tasks (in parallel).")
@click.option("--ray-address", metavar="ADDRESS",
              help="Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray for this command).")
@click.pass_obj
def verify(project: Project, no_run: bool, rerun: bool, only: tuple[str, ...], json_path: Path | None,
           executor: str, ray_address: str | None) -> None:
    """Run or reuse every claim's experiments, check each claim, print a table.

    Writes build/verify.json. Exit 0 when every required claim is verified (or, not standing,
    carries a written waiver, which the table, the site and the paper show), 1 otherwise.
    With --executor ray, independent experiments and a sweep's units run as Ray tasks on a shared
    artifact store; the results are the same bytes as a local run's, and each reuses the other's.

    \b
    Example:
      python -m claims verify --only hneuron-probe-accuracy
      RAY_ADDRESS=head:6379 python -m claims verify --executor ray
    """
    from claims.provenance import git_state
    from claims.report import verify_table
    from claims.verify import STANDING
    from claims.verify import verify as run_verify

    if no_run and rerun:
        raise click.UsageError("--no-run and --rerun contradict each other")
    if ray_address and executor != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    from claims.executor import open_executor
    from claims.runner import Interrupted

    specs = _specs(project, only)
    out = json_path or project.build_dir / "verify.json"
    _check_writable(out, "--json" if json_path else "the report")
    if not no_run:
        project.check_cache()
    overrides = click.get_current_context().meta.get("overrides") or {}
    try:
        with open_executor(executor, project, ray_address, run=not no_run) as where:
            outcomes, runner = run_verify(project, specs, run=not no_run, rerun=rerun, overrides=overrides,
                                          executor=where)
    except (KeyboardInterrupt, Interrupted):
        click.echo("interrupted: finished results are kept, and partial work is checkpointed; "
                   "run verify again to resume", err=True)
        sys.exit(130)
    click.echo(verify_table(outcomes))
    for o in outcomes:
        for problem in o.problems:
            click.echo(f"{o.id}: {problem}", err=True)
        if o.blocked_by:
            click.echo(f"{o.id}: blocked: {o.reason}", err=True)
    required = [o for o in outcomes if o.status not in ("blocked", "not_applicable") or o.blocked_by]
    standing = sum(o.status == STANDING for o in required)
    failing = [o for o in outcomes if o.status in ("failed", "error", "stale") and not o.waiver]
    waived = [o for o in outcomes if o.status != STANDING and o.waiver]
    for o in waived:
        click.echo(f"{o.id}: {o.status}, shown under a waiver: {o.waiver}", err=True)
    blocked = [o for o in outcomes if o.blocked_by]
    summary = {"claims": len(outcomes), "required": len(required), "verified": standing,
               "blocked_by_dependencies": len(blocked),
               "ran": [n.label for n in runner.ran], "reused": [n.label for n in runner.reused],
               "not_reproduced": [{"node": n.label, "what": what} for n, what in runner.not_reproduced]}
    from claims.provenance import redact

    report = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "mode": "no-run" if no_run else "run",
              "only": list(only), "overrides": redact(overrides), "git": git_state(project.root), "summary": summary,
              "claims": redact([o.to_json() for o in outcomes])}
    try:
        _write_json(out, report)
    except OSError as exc:  # a full disk: not bad input, a failure (exit 1)
        from claims.errors import CacheError

        raise CacheError(f"cannot write the report to {out}: {exc.strerror}") from None
    click.echo(f"{standing}/{len(required)} required claims verified"
               + (f" ({len(blocked)} blocked by a dependency that does not stand)" if blocked else "")
               + (f"; {len(waived)} not standing, shown under a waiver" if waived else "")
               + f"; ran {len(runner.ran)}, reused {len(runner.reused)}; report: {project.rel(out)}")
    for node, what in runner.not_reproduced:  # the last lines a user reads: a silent cascade is the risk
        click.echo(f"not reproduced: {node.label} reran at its stored key and gave another result ({what}); "
                   "what this command checked downstream of it ran again on the new output; results committed from the "
                   "earlier one that it did not check are stale now (claims status)", err=True)
    if failing:
        sys.exit(1)


@cli.command("audit-sheet", context_settings=CONTEXT)
@click.argument("rows_path", metavar="ROWS", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "id_field", required=True, help="Field that identifies a judged item (unique items are drawn).")
@click.option("--show", required=True, help="Comma-separated fields the labeller reads.")
@click.option("--hide", required=True, help="Comma-separated verdict fields, kept apart in key.csv.")
@click.option("--strata", default="", help="Comma-separated fields to draw evenly over (task, method, strength).")
@click.option("--n", "n", type=click.IntRange(1), required=True, help="Unique items to draw.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def audit_sheet(rows_path: Path, id_field: str, show: str, hide: str, strata: str, n: int, seed: int,
                out_dir: Path) -> None:
    """Draw a blind labelling sheet from a judge's rows (JSON lines): sheet.csv shows only the
    --show fields and an empty label column; key.csv keeps the verdicts apart (claims/audit.py).

    \b
    Example:
      python -m claims audit-sheet gens.jsonl --id id --show question,answer \\
          --hide judge --strata task --n 200 --out audits/judge
    """
    from claims import audit

    rows = []
    for lineno, line in enumerate(rows_path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ClaimsError(f"{rows_path}:{lineno}: not a JSON object") from None
    split = lambda text: [f.strip() for f in text.split(",") if f.strip()]  # noqa: E731
    sheet, key = audit.draw(rows, id_field=id_field, show=split(show), hide=split(hide), n=n,
                            strata=split(strata), seed=seed)
    audit.write(out_dir, sheet, key, hide=split(hide), strata=split(strata), seed=seed)
    click.echo(f"wrote {out_dir / audit.SHEET} ({len(sheet)} unique items, no verdicts) and {out_dir / audit.KEY} "
               "(keep it away from the labeller)")


@cli.command(context_settings=CONTEXT)
@click.argument("claim_id", metavar="ID")
@click.pass_obj
def recompute(project: Project, claim_id: str) -> None:
    """Rebuild a claim's estimates from the per-item rows committed in the repository and compare
    them with its committed results (its control's too). Runs only the experiment's
    recompute(items, config); reads no cache. Exit 0 when every estimate matches, 1 otherwise.

    \b
    Example:
      python -m claims recompute hneuron-probe-auroc
    """
    from claims.recompute import recompute_claim
    from claims.report import table

    specs = _specs(project, (claim_id,))
    entries = recompute_claim(project, specs[claim_id])
    rows = [[e.role, name, old, new, "match" if ok else "DIFFERS"] for e in entries for name, old, new, ok in e.rows]
    if rows:
        click.echo(table(rows, ["result", "estimate", "committed", "recomputed from rows", ""]))
    for e in entries:
        for problem in e.problems:
            click.echo(f"{claim_id}: {e.role} ({e.node}): {problem}", err=True)
    ok = all(e.ok for e in entries)
    click.echo(f"{claim_id}: {'every estimate recomputed from the committed rows matches' if ok else 'does not recompute'}")
    if not ok:
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
    from claims.status import criterion_marks, node_reports

    specs = _specs(project)
    reports, orphans, errors = node_reports(project, specs)
    marks = criterion_marks(project, specs)
    if as_json:
        click.echo(json.dumps({"nodes": [r.to_json() for r in reports], "orphans": orphans, "errors": errors,
                               "criterion_changed_after_results": marks}, indent=2))
    else:
        rows = [[r.label, r.state, r.reason or "-", ",".join(r.claims) or "(upstream)", r.last_run or "-"] for r in reports]
        click.echo(table(rows, ["node", "state", "why", "claims", "last run"]))
        for orphan in orphans:
            click.echo(f"not used by any claim as written (see `gc` for other profiles): artifacts/{orphan}.json")
        for claim_id, lines in sorted(marks.items()):
            for line in lines:
                click.echo(f"criterion changed: {claim_id}: {line}")
        for error in errors:
            click.echo(error, err=True)
    if errors or any(r.state != "fresh" for r in reports):
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.option("--yes", is_flag=True, help="Delete them (default: a dry run that only lists them).")
@click.pass_obj
def gc(project: Project, yes: bool) -> None:
    """List (or with --yes delete) stored results that no claim uses any more.

    A result is kept when any claim's DAG reaches it, as written or under any --profile / --set
    a stored result was made with (so `--profile paper gc` keeps the embedded results, and plain
    `gc` keeps paper-profile results). Results of blocked claims are kept.

    \b
    Example:
      python -m claims gc          # what would go, and why (nothing is deleted)
      python -m claims gc --yes    # delete result and sidecar of each
    """
    from claims.garbage import collect

    collection = collect(project, _specs(project, apply_overrides=False),
                         click.get_current_context().meta.get("overrides") or {})
    why = f"no claim uses it, as written or under: {collection.described}"
    for name in collection.garbage:
        base = project.artifacts_dir / name
        if yes:
            for path in (base.with_suffix(".json"), base.with_suffix(".provenance.json")):
                path.unlink(missing_ok=True)
        click.echo(f"{'deleted' if yes else 'would delete'}: {project.rel(base.with_suffix('.json'))} ({why})")
    if not collection.garbage:
        click.echo(f"nothing to delete: every stored result is used (as written or under: {collection.described})")
    elif not yes:
        click.echo("dry run: nothing was deleted; run `gc --yes` to delete these")


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
    work_begins()
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
    work_begins()
    from paper_build.build import build

    out = build(project, strict=strict)
    click.echo(f"paper: {project.rel(out)}")


@cli.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--no-watch", is_flag=True, help="Build and serve once; do not rebuild on changes.")
@click.pass_obj
def serve(project: Project, port: int, host: str, no_watch: bool) -> None:
    """Build the site, serve it locally, rebuild what changed on every save and reload the browser.

    Reads results, never runs experiments: after `python -m claims verify` (in another terminal)
    writes a result, the page shows it. A failed build is one line; the last good site stays up.

    \b
    Example:
      python -m claims serve              # open http://127.0.0.1:8000/ and edit content/index.md
      python -m claims serve --port 0     # any free port (printed)
    """
    from site_build.serve import serve as run_server

    work_begins()  # Ctrl-C stops the server cleanly
    run_server(project, host=host, port=port, watch=not no_watch, announce=click.echo)


@cli.command("diff", context_settings=CONTEXT)
@click.argument("rev", required=False)
@click.option("--to", "to", metavar="REV", help="Compare with this revision instead of the work tree.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="A table for the terminal, Markdown for a pull-request comment, or JSON.")
@click.option("--trust-revision", "trust", is_flag=True,
              help="Run REV's experiment code (verify --no-run in a copy of it) to check that its results are "
                   "fresh. Without it, REV is judged from its specs and committed results and none of its code runs.")
@click.pass_obj
def diff(project: Project, rev: str | None, to: str | None, fmt: str, trust: bool) -> None:
    """What changed in the claims since REV: status, verdict words, value, interval, statement and
    criterion of each claim. REV defaults to the last publish (publish.sh records it as
    refs/claims/published), else HEAD~1; the other side is the work tree (or --to REV).

    Flags a value that moved outside its old interval, a status change and a criterion change.
    Exit 1 when a headline claim changed status (or was added or removed), else 0.

    A revision is judged from its own specs and committed results: none of its code is imported,
    so reviewing a branch never runs it. --trust-revision runs its experiment modules instead
    (verify --no-run in a copy of it), which also checks that its results match its code.

    \b
    Example:
      $ python -m claims diff HEAD~1                 # (its verdict column left out here)
      claims: HEAD~1 (23b3bbb29e15) -> work tree
      claim (* headline)  status             value        interval                     changed
      ------------------  -----------------  -----------  ---------------------------  ---------------------
      * steering-slope    verified → failed  3.23 → 1.23  2.64 to 3.82 → 0.64 to 1.82  status, moved, ...
      steering-slope: the value moved outside its old interval (2.64 to 3.82): 3.23 -> 1.23
      steering-slope: criterion config.shift was 0.3, now 0.1
      1 of 7 claims changed; headline status changed: steering-slope
      $ python -m claims diff main --format markdown > comment.md
    """
    from claims.diff import diff as compute
    from claims.diff import markdown, terminal

    work_begins()
    overrides = click.get_current_context().meta.get("overrides") or {}
    result = compute(project, rev, to, overrides, trust)
    if fmt == "json":
        click.echo(json.dumps(result.data(), indent=2, sort_keys=True))
    else:
        click.echo(markdown(result) if fmt == "markdown" else terminal(result), nl=fmt != "markdown")
    if result.headline_status_changes:
        sys.exit(1)


@cli.command(context_settings=CONTEXT)
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The project's name (default: the folder's name).")
@click.option("--package", help="The Python package for its code (default: the name, as an identifier).")
def init(directory: Path, name: str | None, package: str | None) -> None:
    """Start a new claims project in DIRECTORY (default: here): one claim with its experiment and
    control, content citing it, a paper section and a CI gate, ready to verify and build.

    Specs go in specs/ and code in its own package, so nothing shadows the engine. Overwrites
    nothing: a folder that already holds one of its files is refused.

    \b
    Example:
      python -m claims init coin-study && cd coin-study
      python -m claims verify          # runs the coin flips, checks the claim
      python -m claims serve           # the site at http://127.0.0.1:8000, rebuilt on save
    """
    from claims.scaffold import git_init
    from claims.scaffold import init as scaffold

    written = scaffold(directory, name, package)
    root = directory.resolve()
    for path in written:
        click.echo(f"wrote {path.relative_to(root).as_posix()}")
    click.echo(f"git: {git_init(root)}")
    where = "" if root == Path.cwd().resolve() else f"cd {directory} && "
    click.echo(f"next: {where}python -m claims verify && python -m claims serve")


@cli.command(context_settings=CONTEXT)
@click.option("--write", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the reference to this file (default: print it).")
def reference(path: Path | None) -> None:
    """The reference in Markdown: [tool.claims] settings, every claim spec field, the front
    matter and what an experiment returns, from the engine's own models (their descriptions).

    \b
    Example:
      python -m claims reference --write docs/reference.md
    """
    from claims.reference import markdown

    text = markdown()
    if path is None:
        click.echo(text, nl=False)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    click.echo(f"wrote {path}")


def main() -> None:
    """Run the CLI with the documented exit codes: click's own handling of Ctrl-C ("Aborted!",
    exit 1) becomes "interrupted", exit 130, wherever it lands (start-up, a spec load, a run)."""
    import errno
    import os

    from claims.progress import quiet

    if quiet():  # the libraries' own bars (model loading, datasets) follow ours
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        code = cli.main(prog_name="python -m claims", standalone_mode=False)
    except (KeyboardInterrupt, click.Abort) as exc:
        if isinstance(exc, click.Abort) and not isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            click.echo("Aborted!", err=True)
            sys.exit(1)
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = None  # type: ignore[assignment]  # the reader went away (| head): nothing more to say
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
