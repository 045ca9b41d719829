"""The Jinja environment for site and paper templates, and what their rendering depends on.

Templates come from the project's `templates/` folder; a template it lacks comes from the
templates this project ships (so a bare claims project still gets a site). Autoescape is on and
undefined names are errors. `fingerprint()` hashes the templates, the static files and the
builder code, and enters every output's key: change any of them and every page renders again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from claims.errors import BuildError
from claims.project import Project
from claims.verdict import EXPECT_TEXT, verdict_class
from site_build.common.references import fmt_value

PACKAGE_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
BUILDER_CODE = [Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[2] / "paper_build"]
STATUS_TEXT = {
    "verified": "verified: the assertion and the control hold on a fresh result",
    "failed": "failed: an assertion, the control or a check does not hold",
    "stale": "stale: the result does not match the current code, config or inputs",
    "error": "error: the experiment could not be checked",
    "blocked": "blocked: not standing, for the reason given (a claim it depends on does not stand, or it is not run)",
    "not_applicable": "not applicable, for the reason given",
}


def template_dirs(project: Project) -> list[Path]:
    dirs = [project.templates_dir]
    if PACKAGE_TEMPLATES.resolve() != project.templates_dir.resolve():
        dirs.append(PACKAGE_TEMPLATES)
    return [d for d in dirs if d.is_dir()]


def find_static(project: Project, name: str) -> Path:
    for folder in template_dirs(project):
        if (folder / "static" / name).is_file():
            return folder / "static" / name
    raise BuildError(f"templates/static/{name}: not found in {', '.join(map(str, template_dirs(project)))}")


def _files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for folder in paths:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(project: Project) -> str:
    """Templates, static files and builder code: what every page's rendering depends on."""
    return _files_digest([*template_dirs(project), *BUILDER_CODE])


def environment(project: Project) -> Any:
    return _environment(tuple(template_dirs(project)))


@functools.cache
def _environment(dirs: tuple[Path, ...]) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(value=_value, interval=_interval, pretty=_pretty, short=_short, status_text=_status_text,
                       verdict_class=verdict_class, expect_text=lambda e: EXPECT_TEXT.get(e, e))
    return env


def render(project: Project, template: str, **context: Any) -> bytes:
    import jinja2

    try:
        html = environment(project).get_template(template).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise BuildError(f"templates/{exc.name or template}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise BuildError(f"templates/{template}: {type(exc).__name__}: {exc}") from None
    return html.encode("utf-8")


# ---- template filters (numbers here come from claim data, never from templates) -------------
def _value(value: Any, spec: str = ".3g") -> str:
    return "–" if value is None else fmt_value(value, spec)


def _interval(ci: Any, spec: str = ".3g", level: Any = None) -> str:
    if not ci:
        return "–"
    prefix = f"{fmt_value(level, '.0%')} CI " if level else ""
    return f"{prefix}{fmt_value(ci[0], spec)} to {fmt_value(ci[1], spec)}"


def compact_json(value: Any, width: int = 72, indent: int = 0) -> str:
    """JSON as a reader scans it: a list or mapping that fits on one line stays on one line
    (a config's list of alphas is one line, not one line per number), keys sorted."""
    flat = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [compact_json(v, width, indent + 2) for v in value]
        return "[\n" + ",\n".join(pad + i for i in items) + "\n" + " " * indent + "]"
    items = [f"{json.dumps(k, ensure_ascii=False)}: {compact_json(v, width - len(json.dumps(k)) - 2, indent + 2)}"
             for k, v in sorted(value.items())]
    return "{\n" + ",\n".join(pad + i for i in items) + "\n" + " " * indent + "}"


def _pretty(data: Any) -> str:
    return compact_json(data)


def _short(sha: Any, n: int = 12) -> Any:
    if not sha:
        return "–"
    return Markup('<code title="{}">{}</code>').format(escape(sha), escape(str(sha)[:n]))


def _status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status)
