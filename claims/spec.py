"""Claim specs: one YAML file per claim, validated with pydantic, errors as file:line: field: message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from claims import expr
from claims.errors import ExpressionError, SpecError

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
MODULE_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


def _check_expression(value: str) -> str:
    try:
        expr.parse(value, "assert")
    except ExpressionError as exc:
        raise ValueError(exc.message.removeprefix("assert: ")) from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Uncertainty(_Strict):
    method: Literal["bootstrap", "wilson", "clopper-pearson", "analytic", "permutation"] = Field(
        description="How the interval is computed; the result must say the same method family."
    )
    level: float = Field(gt=0, lt=1, description="Coverage of the interval, e.g. 0.95.")


class ControlSpec(_Strict):
    experiment: str = Field(pattern=MODULE_PATTERN, description="Module exposing run(config, ctx).")
    config: dict[str, Any] = Field(default_factory=dict, description="Config of the control run.")
    assert_: str = Field(
        alias="assert",
        description="What must hold against the control; its result is read as `control.<name>`.",
    )
    description: str = Field(default="", description="What the control is, for readers.")

    @field_validator("assert_")
    @classmethod
    def _parses(cls, value: str) -> str:
        return _check_expression(value)


def _control_tag(value: Any) -> str:
    return "spec" if isinstance(value, dict | ControlSpec) else "none"


Control = Annotated[
    Annotated[ControlSpec, Tag("spec")] | Annotated[Literal["none"], Tag("none")],
    Discriminator(_control_tag),
]


class ClaimSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN, description="Stable id; equals the file name without .yaml.")
    title: str = Field(description="A short title for cards and tables.")
    statement: str = Field(
        description="The sentence a reader sees; numbers enter only as {fields} of the result."
    )
    kind: Literal["estimate", "interval", "count"] = Field(
        default="estimate",
        description="estimate: value with interval; interval: interval only; count: descriptive count.",
    )
    status: Literal["required", "blocked", "not_applicable"] = Field(
        default="required", description="Only required claims can be shown as standing."
    )
    reason: str | None = Field(default=None, description="Why a claim is blocked or not applicable.")
    headline: bool = Field(default=False, description="Headline claims must be cited in content/.")
    experiment: str = Field(pattern=MODULE_PATTERN, description="Module exposing run(config, ctx).")
    config: dict[str, Any] = Field(default_factory=dict, description="Config passed to run().")
    metric: str = Field(description="Name of the headline estimate in the result.")
    uncertainty: Uncertainty | None = Field(
        default=None, description="Interval the metric must carry (estimate and interval kinds)."
    )
    assert_: str | None = Field(
        default=None, alias="assert", description="What must hold for the claim to stand."
    )
    control: Control = Field(description="The negative control, or 'none' with why_no_control.")
    why_no_control: str | None = Field(
        default=None, description="Required when control is 'none': why no control applies."
    )
    figure: str | None = Field(default=None, description="Name of a chart in site_build.figures.")
    depends_on: list[str] = Field(
        default_factory=list, description="Claims that must stand for this one to stand."
    )
    section: str = Field(default="", description="Study or section the claim belongs to.")

    @field_validator("assert_")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return None if value is None else _check_expression(value)

    @model_validator(mode="after")
    def _consistent(self) -> ClaimSpec:
        if self.status != "required" and not (self.reason or "").strip():
            raise ValueError(f"status {self.status!r} needs a written reason")
        if self.status == "required" and self.reason:
            raise ValueError("reason is only for blocked or not_applicable claims")
        if self.control == "none" and not (self.why_no_control or "").strip():
            raise ValueError("control: none needs a written why_no_control")
        if self.control != "none" and self.why_no_control:
            raise ValueError("why_no_control is only for control: none")
        if self.kind != "count" and self.uncertainty is None:
            raise ValueError(f"a claim of kind {self.kind!r} needs uncertainty (method and level)")
        if self.status == "required" and self.assert_ is None:
            raise ValueError("a required claim needs an assert")
        return self

    @property
    def control_spec(self) -> ControlSpec | None:
        return None if self.control == "none" else self.control


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and records the line of every key path."""


def _walk(loader: _LineLoader, node: yaml.Node, path: tuple, lines: dict[tuple, int], where: str):
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise SpecError(f"{where}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _walk(loader, value_node, (*path, key), lines, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), lines, where) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_with_lines(text: str, where: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML into plain data plus a map from key path to 1-based line number."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(f"{where}:1: the file is empty")
        lines: dict[tuple, int] = {}
        return _walk(loader, node, (), lines, where), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecError(f"{where}:{line}: invalid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def _locate(loc: tuple, lines: dict[tuple, int]) -> tuple[str, int]:
    """Map a pydantic error location to a readable field path and the nearest known line."""
    fields = [str(p) for p in loc if p not in ("spec", "none") and not str(p).startswith("literal[")]
    fields = ["assert" if f == "assert_" else f for f in fields]
    path: tuple = ()
    line = lines.get((), 1)
    for part in fields:
        key: Any = int(part) if part.isdigit() else part
        if (*path, key) not in lines:
            break
        path = (*path, key)
        line = lines[path]
    return ".".join(fields) or "(top level)", line


def format_validation_error(exc: ValidationError, where: str, lines: dict[tuple, int]) -> str:
    messages = []
    for err in exc.errors():
        field, line = _locate(tuple(err["loc"]), lines)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        messages.append(f"{where}:{line}: {field}: {msg}")
    return "\n".join(messages)


def load_spec(path: Path, root: Path | None = None) -> ClaimSpec:
    """Load and validate one claim spec file."""
    where = _display(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{where}: cannot read: {exc.strerror}") from None
    data, lines = load_yaml_with_lines(text, where)
    if not isinstance(data, dict):
        raise SpecError(f"{where}:1: a claim spec must be a mapping of fields")
    try:
        spec = ClaimSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, where, lines)) from None
    if spec.id != path.stem:
        raise SpecError(f"{where}:{lines[('id',)]}: id: {spec.id!r} must equal the file name {path.stem!r}")
    return spec


def load_specs(specs_dir: Path, root: Path | None = None) -> dict[str, ClaimSpec]:
    """Load every spec in a directory; all errors are reported together."""
    specs: dict[str, ClaimSpec] = {}
    errors: list[str] = []
    for path in sorted(specs_dir.glob("*.yaml")):
        try:
            spec = load_spec(path, root)
        except SpecError as exc:
            errors.append(exc.message)
            continue
        specs[spec.id] = spec
    for spec in specs.values():
        for dep in spec.depends_on:
            if dep not in specs:
                errors.append(f"{_display(specs_dir / (spec.id + '.yaml'), root)}: depends_on: unknown claim {dep!r}")
    if errors:
        raise SpecError("\n".join(errors))
    return specs


def _display(path: Path, root: Path | None) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) if root else str(path)
    except ValueError:
        return str(path)


def with_config(spec: ClaimSpec, overrides: dict[str, Any]) -> ClaimSpec:
    """The spec with `overrides` applied to its experiment's and its control's configs."""
    update: dict[str, Any] = {"config": {**spec.config, **overrides}}
    if spec.control_spec is not None:
        update["control"] = spec.control_spec.model_copy(update={"config": {**spec.control_spec.config, **overrides}})
    return spec.model_copy(update=update)
