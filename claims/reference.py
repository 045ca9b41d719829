"""The reference: `[tool.claims]`, every claim spec field, the front matter, what an experiment
returns, written from the models themselves (their pydantic Field descriptions), so that a new field
is documented the moment it exists. `python -m claims reference --write docs/reference.md`; a test
checks that the committed file is current.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

HEADER = """# Reference

Written by `python -m claims reference --write docs/reference.md` from the engine's own models;
do not edit by hand (a test fails when this file is not current).
"""


def markdown() -> str:
    """The whole reference, as Markdown."""
    from claims.experiment import __doc__ as protocol
    from claims.project import SETTINGS
    from claims.result import Result
    from claims.spec import ClaimSpec
    from site_build.common.content import FrontMatter

    parts = [HEADER, "## `[tool.claims]` in pyproject.toml\n",
             "Every setting is optional; paths are relative to the project's folder.\n",
             "| setting | meaning |", "| --- | --- |",
             *(f"| `{name}` | {_cell(text)} |" for name, text in SETTINGS.items()), ""]
    parts += _models("Claim spec: `specs/<id>.yaml`", ClaimSpec,
                     "One YAML file per claim; unknown keys, wrong types and missing fields are errors "
                     "reported as `file:line: field: message`.")
    parts += _models("Front matter: `content/front.md`", FrontMatter,
                     "The YAML header of `content/front.md`; its body is the abstract.")
    parts += _models("What `run(config, ctx)` returns: `claims.Result`", Result,
                     "An experiment returns named estimates, each with its interval, level and n.")
    parts += ["## Experiment modules\n", "```text", inspect.cleandoc(protocol or "").strip(), "```", ""]
    return "\n".join(parts).rstrip() + "\n"


def _models(title: str, root: type[BaseModel], intro: str) -> list[str]:
    """A table per model: the root first, then each model its fields use, in order of first use."""
    order: list[type[BaseModel]] = [root]
    for model in order:  # grows while it is walked
        for field in model.model_fields.values():
            for found in _models_in(field.annotation):
                if found not in order:
                    order.append(found)
    lines = [f"## {title}\n", intro, ""]
    for model in order:
        if model is not root:
            lines.append(f"### `{model.__name__}`\n")
            if model.__doc__ and model.__doc__ != BaseModel.__doc__:
                lines += [" ".join(inspect.cleandoc(model.__doc__).split()), ""]
        lines += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            lines.append(f"| `{key}` | {_cell(_type(field.annotation))} | {_cell(_default(field))} | "
                         f"{_cell(field.description or '')} |")
        lines.append("")
    return lines


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += [m for m in _models_in(arg) if m not in out]
    return out


def _type(annotation: Any) -> str:
    """A type in words a spec writer reads: `text`, `number`, `"a" | "b"`, `list of Row`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is Literal:
        return " | ".join(f'"{a}"' for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is list:
        inner = _type(args[0]) if args else "any"
        return f"list of ({inner})" if " or " in inner else f"list of {inner}"
    if origin is tuple:
        return f"pair of {_type(args[0])}" if args else "tuple"
    if origin is dict:
        return f"mapping of name to {_type(args[1])}" if args and args[1] is not Any else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"`{annotation.__name__}`"
    return {str: "text", int: "integer", float: "number", bool: "true/false", Any: "any"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "`[]`" if value == [] else "`{}`" if value == {} else f"`{value!r}`"
    if field.default is None or field.default is PydanticUndefined:
        return "none"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f'`"{field.default}"`' if isinstance(field.default, str) else f"`{field.default!r}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
