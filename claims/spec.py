"""Claim specs: one YAML file per claim, validated with pydantic, errors as file:line: field: message."""

from __future__ import annotations

import math
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from claims import expr
from claims.errors import ExpressionError, SpecError
from claims.figure import LOCATION_TAGS, Axis, FigureField
from claims.resources import Resources

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
MAX_ID_LENGTH = 80  # ids name files (build/site/claims/<id>.html, figures): far below NAME_MAX
MODULE_PATTERN = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"


SPEC_SUFFIXES = (".yaml", ".yml")
#: Names an assertion may read that are not fields of a result (the spec's own interval level).
_NOT_FIELDS = {"level"}
#: Key segments that mark a secret (api_key, hf_token, password, client_secret, ...): a secret
#: never belongs in a spec or a config, which enter keys, sidecars and the site.
_SECRET_SEGMENTS = {"key", "apikey", "token", "password", "passwd", "pwd", "secret", "credential", "credentials",
                    "creds", "cred", "bearer", "auth", "cookie", "session"}
_FORMAT_SPEC = re.compile(
    r"^(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?$")
MAX_FORMAT_WIDTH = 40


def _check_expression(value: str) -> str:
    try:
        expr.parse(value, "assert")
    except ExpressionError as exc:
        raise ValueError(exc.message.removeprefix("assert: ")) from None
    return value


def _fields_read(source: str) -> list[str]:
    """Result fields an expression reads (control.* included, the spec's own names left out)."""
    return [n for n in expr.referenced(source) if n.split(".")[0] not in _NOT_FIELDS]


def secret_key(name: str) -> bool:
    """True for config keys that name a secret: the last word is key/token/password/secret/...,
    or the name contains password or secret ("api_key", "hf_token"; not "max_new_tokens")."""
    words = [w for w in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", str(name)) if w]
    lowered = str(name).lower()
    return bool(words) and (words[-1].lower() in _SECRET_SEGMENTS or "password" in lowered or "secret" in lowered)


def check_config_values(config: Any, path: str = "config") -> list[str]:
    """Problems with a config: secret-looking keys (secrets come from the environment), NaN or
    infinite numbers (they have no canonical JSON and cannot enter a key)."""
    problems: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            here = f"{path}.{key}"
            if secret_key(key):
                problems.append(f"{here}: looks like a secret; pass secrets through the environment, never a config")
            else:
                problems += check_config_values(value, here)
    elif isinstance(config, str):
        from claims.provenance import find_credential

        if find_credential(config):
            problems.append(f"{path}: its value looks like a credential; pass secrets through the environment, "
                            "never a config")
    elif isinstance(config, list | tuple):
        for i, value in enumerate(config):
            problems += check_config_values(value, f"{path}[{i}]")
    elif isinstance(config, float) and (math.isnan(config) or math.isinf(config)):
        problems.append(f"{path}: {config} is not a finite number")
    return problems


def expr_fields_in_statement(text: str) -> list[str]:
    """The fields a statement prints: {control.rank_p:.2f} -> control.rank_p."""
    return [name.split("[")[0] for _, name, _, _ in string.Formatter().parse(text) if name]


def valid_config(value: dict[str, Any]) -> dict[str, Any]:
    """A config without secrets or non-finite numbers (a pydantic validator of every `config` field)."""
    problems = check_config_values(value)
    if problems:
        raise ValueError("; ".join(p.removeprefix("config.") for p in problems))
    return value


def check_statement(text: str) -> str:
    """A statement must parse as a format string with plain fields and sane format specs."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"cannot be formatted: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.strip():
            raise ValueError("has an empty {} field: name a result field, e.g. {accuracy:.1%}")
        if conversion:
            raise ValueError(f"{{{name}!{conversion}}}: conversions are not allowed")
        if spec and "{" in spec:
            raise ValueError(f"{{{name}:{spec}}}: nested fields in a format spec are not allowed")
        match = _FORMAT_SPEC.match(spec or "")
        if not match:
            raise ValueError(f"{{{name}:{spec}}}: {spec!r} is not a number format such as .1% or +.2f")
        for part in ("width", "precision"):
            if match[part] and int(match[part]) > MAX_FORMAT_WIDTH:
                raise ValueError(f"{{{name}:{spec}}}: a {part} of {match[part]} is absurd (at most {MAX_FORMAT_WIDTH})")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Uncertainty(_Strict):
    method: Literal["bootstrap", "wilson", "clopper-pearson", "analytic", "permutation"] = Field(
        description="How the interval is computed; the result must say the same method family."
    )
    level: float = Field(gt=0, lt=1, description="Coverage of the interval, e.g. 0.95.")


DEFAULT_BALANCE = 0.1


class Rank(_Strict):
    """A control that ranks the real effect among random draws (a permutation or random-set test)."""

    p: str = Field(default="rank_p", description="Field of the control's result holding the rank p-value.")
    draws: str = Field(default="draws", description="Field of the control's result holding the number of draws.")
    sided: Literal["one", "two"] = Field(description="one: draws at least as extreme in the claimed direction, "
                                         "or at least as large in absolute size when the statistic ranked is a "
                                         "size (smallest p 1/(draws+1)); two: a one-sided p doubled, either "
                                         "direction (smallest 2/(draws+1)). A direction taken from the real "
                                         "effect itself is not a claimed one: say so in the claim.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="The threshold the rank p is judged against.")
    min_draws: int = Field(default=0, ge=0, description="The fewest draws this kind of control needs "
                           "(e.g. 100 for probes, 32 for sweeps); fewer fails the claim.")


class Baseline(_Strict):
    """A trivial baseline scored on the same items: the claim must say whether it beats the strongest."""

    label: str = Field(min_length=1, description="What the baseline is, for readers: 'answer length'.")
    experiment: str | None = Field(default=None, pattern=MODULE_PATTERN, description=(
        "Module that scores the baseline (run like a control); without it, the fields are read from the "
        "claim's own result (control.<name> reads its control's)."))
    config: dict[str, Any] = Field(default_factory=dict, description="Config of the baseline's run.")
    value: str | None = Field(default=None, description="Field holding the baseline's own score (shown).")
    difference: str = Field(description="Estimate field of the paired difference, claim minus baseline on the "
                            "same items, signed so that positive favours the claim; it carries its interval.")

    _config_values = field_validator("config")(classmethod(lambda cls, value: valid_config(value)))


class Headroom(_Strict):
    """The rate an effect moves from, for a null on a bounded scale: the margin must fit in the room
    the rate leaves towards each bound tested."""

    rate: str = Field(description="Field holding the baseline (unsteered) rate, e.g. unsteered_compliance.")
    range: tuple[float, float] = Field(description="The rate's bounds, e.g. [0, 1] or [0, 100].")
    per_unit: float = Field(default=1.0, gt=0, description="Rate units moved by one unit of the metric over the "
                            "design (e.g. the span of alpha for a slope per unit of alpha).")
    sides: Literal["both", "up", "down"] = Field(default="both", description="Directions the null is tested in.")


class Audit(_Strict):
    """An audit of a judge against labels: the result must say who labelled, that the labels were
    made blind to the judge, and how many unique items they cover."""

    min_unique: int = Field(default=200, ge=1, description="The fewest unique items the audit must label.")


class ControlSpec(_Strict):
    experiment: str = Field(pattern=MODULE_PATTERN, description="Module exposing run(config, ctx).")
    config: dict[str, Any] = Field(default_factory=dict, description="Config of the control run.")
    assert_: str = Field(
        alias="assert",
        description="What must hold against the control; its result is read as `control.<name>`. "
        "For expect: effect it says the control is beaten; for expect: null, that the effect lies "
        "within the control's range.",
    )
    description: str = Field(default="", description="What the control is, for readers.")
    resources: Resources | None = Field(
        default=None, description="What one task of the control needs on Ray (num_cpus, num_gpus, memory); "
        "overrides the module's RESOURCES. Never part of the key.")
    role: Literal["negative", "positive"] = Field(
        default="negative",
        description="negative: the control must be beaten (for a null: must not be); its words are 'beats "
        "control' / 'control not beaten'. positive: a known effect the method must detect; its words are "
        "'detected' / 'missed'.")
    matched_on: dict[str, float] = Field(
        default_factory=dict,
        description="Covariates the control is matched on, each with its tolerance (a list of names takes "
        f"the default |standardized mean difference| <= {DEFAULT_BALANCE}). The control's result must report "
        "`balance: {covariate: achieved}`; verify fails a covariate that is missing or beyond its tolerance.")
    rank: Rank | None = Field(
        default=None,
        description="For a control that ranks the real effect among random draws: which result fields hold "
        "the rank p and the number of draws, the sidedness and the threshold. Required when the control "
        "assertion reads a rank p; verify refuses a threshold the draws cannot reach (smallest p = "
        "1/(draws+1) one-sided, 2/(draws+1) two-sided) and never calls a control beaten above it.")

    why_unmatched: str | None = Field(
        default=None, description="For a control that ranks among random draws without matched_on: why no "
        "covariate could explain the effect.")

    @field_validator("matched_on", mode="before")
    @classmethod
    def _matched_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {str(name): DEFAULT_BALANCE for name in value}
        return value

    @field_validator("matched_on")
    @classmethod
    def _tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        for name, tol in value.items():
            if not (tol > 0 and math.isfinite(tol)):
                raise ValueError(f"{name}: a tolerance must be a positive number, not {tol}")
        return value

    @field_validator("assert_")
    @classmethod
    def _parses(cls, value: str) -> str:
        _check_expression(value)
        if not any(n.startswith("control.") for n in _fields_read(value)):
            raise ValueError("reads no control.<field>: a control assertion must compare with the control")
        return value

    @model_validator(mode="after")
    def _rank_declared(self) -> ControlSpec:
        reads_rank = [n for n in _fields_read(self.assert_) if n.split(".")[-1].endswith("rank_p")]
        if reads_rank and self.rank is None:
            raise ValueError(f"reads {reads_rank[0]}: declare rank: {{sided: one|two, alpha: ...}} so that the "
                             "engine checks the draws can reach the threshold")
        return self

    _config_values = field_validator("config")(classmethod(lambda cls, value: valid_config(value)))


class Power(_Strict):
    """What makes a null informative: an effect size that would matter, and either the design's
    minimum detectable effect (which must not exceed it) or an equivalence test (the metric's whole
    interval must lie within plus or minus the margin)."""

    margin: float = Field(gt=0, description="The smallest effect that would matter, in the metric's units.")
    mde: str | None = Field(
        default=None,
        description="Expression over the result (and control.*) giving the design's minimum detectable "
        "effect, in the metric's units; the null stands only if it is at most `margin`. Without it, "
        "the metric's interval must lie within ±margin (equivalence).")
    why: str = Field(min_length=1, description="Why an effect of this size is the one that matters.")

    @field_validator("mde")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_expression(value)
        if not _fields_read(value):
            raise ValueError("reads no field of the result")
        return value


class CriterionNote(_Strict):
    """A recorded reason for a change of the claim's criterion (assert, control assert, metric,
    expectation, power or config), matched to the change by its commit or by field and old value."""

    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{7,40}$",
                               description="The commit that made the change (a prefix of 7+ hex digits).")
    field: str | None = Field(default=None, description="The field that changed, e.g. control.assert.")
    was: Any = Field(default=None, description="Its value before the change.")
    why: str = Field(min_length=1, description="Why the criterion changed.")

    @model_validator(mode="after")
    def _names_the_change(self) -> CriterionNote:
        if self.commit is None and self.field is None:
            raise ValueError("a criterion change names its commit, or its field (and old value)")
        return self


def _control_tag(value: Any) -> str:
    return "spec" if isinstance(value, dict | ControlSpec) else "none"


Control = Annotated[
    Annotated[ControlSpec, Tag("spec")] | Annotated[Literal["none"], Tag("none")],
    Discriminator(_control_tag),
]


class ClaimSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH,
                    description="Stable id; equals the file name without .yaml (a page name: at most 80 characters).")
    title: str = Field(description="A short title for cards and tables.")
    statement: str = Field(
        description="The sentence a reader sees; numbers enter only as {fields} of the result."
    )
    kind: Literal["estimate", "interval", "count"] = Field(
        default="estimate",
        description="estimate: value with interval; interval: interval only; count: descriptive count.",
    )
    expect: Literal["effect", "null"] = Field(
        default="effect",
        description="effect: the claim asserts an effect (its control must be beaten); null: it "
        "asserts no effect beyond the control's range or an equivalence margin, and carries `power`.",
    )
    power: Power | None = Field(
        default=None, description="Required for expect: null: what makes the null informative.")
    preregistered: bool = Field(
        default=False,
        description="The criterion was fixed before the results: a later change of it fails the "
        "coverage gate unless criterion_changes records why.")
    criterion_changes: list[CriterionNote] = Field(
        default_factory=list, description="Reasons for changes of the criterion after results existed.")
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
    baselines: list[Baseline] = Field(
        default_factory=list, description="Trivial baselines scored on the same items (model confidence, length, "
        "question family, a format regex, a bag of words); verify reports the claim against the strongest, "
        "which the statement may cite as {strongest_baseline.label}, {strongest_baseline.value}, "
        "{strongest_baseline.difference} and {strongest_baseline.difference_ci[0]} / [1].")
    why_no_baseline: str | None = Field(
        default=None, description="A headline claim that expects an effect names baselines or says here why none applies.")
    versus_baseline: Literal["beats", "does_not_beat"] | None = Field(
        default=None, description="What the claim says of its strongest baseline: beats (its paired difference's "
        "interval lies above zero) or does_not_beat. Default: beats for expect: effect, does_not_beat for a null.")
    range: tuple[float, float] | None = Field(
        default=None, description="The metric's bounds when it is bounded (a rate: [0, 1]; a percentage: [0, 100]); "
        "a null's equivalence margin around `reference` must stay inside them.")
    reference: float = Field(
        default=0.0, description="The value a null's equivalence margin centres on (0 for a difference, 0.5 for "
        "chance AUROC).")
    headroom: Headroom | None = Field(
        default=None, description="For a null about a change of a bounded rate: the rate it moves from; the margin "
        "must fit in the room the rate leaves.")
    audit: Audit | None = Field(
        default=None, description="For a judge-audit claim: the result must report labeller, blind: true and "
        "unique_items >= min_unique.")
    waiver: str | None = Field(
        default=None, description="Why a headline claim that does not stand is still shown (marked) rather than "
        "fixed; without it such a claim fails coverage.")
    figure: FigureField | None = Field(
        default=None,
        description="The claim's chart: a preset name (estimate_vs_control, alpha_sweep, "
        "detection_vs_steering), one panel {kind: intervals | rank | sweep | scatter, ...}, or a list of "
        "panels drawn one under another (claims/figure.py). Default: the estimate beside its control.")
    axis: Axis | None = Field(
        default=None, description="How charts label the metric: {label, unit, format}. Default: the metric's name.")
    caption: str | None = Field(
        default=None,
        description="What a reader should look at in the chart (not the title again). {fields} of the result "
        "may appear, as in the statement; typed numbers may not.")
    depends_on: list[str] = Field(
        default_factory=list, description="Claims that must stand for this one to stand."
    )
    section: str = Field(default="", description="Study or section the claim belongs to.")
    resources: Resources | None = Field(
        default=None, description="What one task of the claim's experiment needs on Ray (num_cpus, num_gpus, "
        "memory); overrides the module's RESOURCES. Never part of the key.")

    _where: str = PrivateAttr(default="")
    _lines: dict = PrivateAttr(default_factory=dict)

    @field_validator("assert_")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_expression(value)
        if not [n for n in _fields_read(value) if not n.startswith("control.")]:
            raise ValueError("reads no field of the result: a vacuous assertion cannot fail")
        return value

    @field_validator("expect", mode="before")
    @classmethod
    def _yaml_null(cls, value: Any) -> Any:
        return "null" if value is None else value  # `expect: null` reads as YAML null

    @field_validator("statement")
    @classmethod
    def _formats(cls, value: str) -> str:
        return check_statement(" ".join(value.split()))

    _config_values = field_validator("config")(classmethod(lambda cls, value: valid_config(value)))

    @field_validator("caption")
    @classmethod
    def _caption(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from claims.numbers import literal_numbers

        value = check_statement(" ".join(value.split()))
        typed = literal_numbers(value)
        if typed:
            raise ValueError(f"has hand-typed numbers {typed}: cite result fields as {{name}} instead")
        return value

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
        if self.expect == "null" and self.power is None:
            raise ValueError("expect: null needs power (margin and why, with mde or as an equivalence test): "
                             "a null from an underpowered test is not a finding")
        if self.expect == "effect" and self.power is not None:
            raise ValueError("power is for expect: null claims")
        if self.baselines and (self.why_no_baseline or "").strip():
            raise ValueError("why_no_baseline is only for claims without baselines")
        if self.versus_baseline and not self.baselines:
            raise ValueError("versus_baseline needs baselines")
        if self.range is not None:
            low, high = self.range
            if math.isnan(low) or math.isnan(high) or not low < high:
                raise ValueError(f"range {list(self.range)} must be two numbers, low < high (.inf for no bound)")
            if not low <= self.reference <= high:
                raise ValueError(f"reference {self.reference} lies outside range {list(self.range)}")
        if self.headroom is not None and self.expect != "null":
            raise ValueError("headroom is for expect: null claims (the room a null's margin must fit in)")
        control = self.control_spec
        printed = [n for n in expr_fields_in_statement(self.statement) if n.startswith("control.")
                   and n.split(".")[-1].endswith("rank_p")]
        if printed and control is not None and control.rank is None:
            raise ValueError(f"the statement prints {printed[0]}: declare control.rank {{draws, sided, alpha}} so that "
                             "the engine checks the draws can reach the threshold a reader will judge it by")
        if self.waiver is not None and not self.waiver.strip():
            raise ValueError("waiver needs a written reason")
        return self

    @property
    def baseline_expectation(self) -> str | None:
        if not self.baselines:
            return None
        return self.versus_baseline or ("beats" if self.expect == "effect" else "does_not_beat")

    @property
    def where(self) -> str:
        """The spec file, as errors show it."""
        return self._where or f"{self.id}.yaml"

    def line(self, *path: Any) -> int:
        """The 1-based line of a field (the nearest known), for file:line messages."""
        while path and path not in self._lines:
            path = path[:-1]
        return self._lines.get(path, 1)

    @property
    def control_spec(self) -> ControlSpec | None:
        return None if self.control == "none" else self.control

    @property
    def figure_data(self) -> Any:
        """`figure` as plain data (a name, a panel dict, or a list of them), as results record it."""
        from claims.figure import panels

        if self.figure is None or isinstance(self.figure, str):
            return self.figure
        return panels(self.figure)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and aliases and records the line of every key path.

    Aliases (*name) are refused outright: a spec has no use for them, and nested ones expand
    exponentially ("billion laughs") or recursively."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError(f"{self.name}:{event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                            "allowed in a spec: write the value out")
        return super().compose_node(parent, index)


def _walk(loader: _LineLoader, node: yaml.Node, path: tuple, lines: dict[tuple, int], where: str):
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise SpecError(f"{where}:{key_node.start_mark.line + 1}: a key must be a plain name, "
                                f"not {type(key).__name__} {key!r}")
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
    loader.name = where
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
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}:1: invalid YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{where}:1: the YAML is nested too deeply") from None
    finally:
        loader.dispose()


def _locate(loc: tuple, lines: dict[tuple, int]) -> tuple[str, int]:
    """Map a pydantic error location to a readable field path and the nearest known line."""
    fields = [str(p) for p in loc if p not in ("spec", "none", *LOCATION_TAGS) and not str(p).startswith("literal[")]
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
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data_bytes[: exc.start].count(b"\n") + 1
        raise SpecError(f"{where}:{line}: not UTF-8 text (byte 0x{data_bytes[exc.start]:02x} at offset "
                        f"{exc.start}): save the spec as UTF-8") from None
    data, lines = load_yaml_with_lines(text, where)
    if not isinstance(data, dict):
        raise SpecError(f"{where}:1: a claim spec must be a mapping of fields")
    try:
        spec = ClaimSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, where, lines)) from None
    if spec.id != path.stem:
        raise SpecError(f"{where}:{lines[('id',)]}: id: {spec.id!r} must equal the file name {path.stem!r}")
    spec._where, spec._lines = where, lines
    return spec


def load_specs(specs_dir: Path, root: Path | None = None) -> dict[str, ClaimSpec]:
    """Load every spec in a directory; all errors are reported together."""
    specs: dict[str, ClaimSpec] = {}
    errors: list[str] = []
    paths = sorted(p for p in specs_dir.iterdir() if p.suffix in SPEC_SUFFIXES and not p.name.startswith(".")) \
        if specs_dir.is_dir() else []
    for path in paths:
        try:
            spec = load_spec(path, root)
        except SpecError as exc:
            errors.append(exc.message)
            continue
        if spec.id in specs:
            errors.append(f"{spec.where}:1: id: {spec.id!r} is also defined by {specs[spec.id].where}")
            continue
        specs[spec.id] = spec
    for spec in specs.values():
        for i, dep in enumerate(spec.depends_on):
            if dep not in specs:
                errors.append(f"{spec.where}:{spec.line('depends_on', i)}: depends_on: unknown claim {dep!r}")
            elif dep == spec.id:
                errors.append(f"{spec.where}:{spec.line('depends_on', i)}: depends_on: a claim cannot depend on itself")
    if not errors:
        errors += dependency_cycles(specs)
    if errors:
        raise SpecError("\n".join(errors))
    return specs


def dependency_cycles(specs: dict[str, ClaimSpec]) -> list[str]:
    """One error per cycle in depends_on, naming the chain and the line that closes it."""
    errors, state = [], dict.fromkeys(specs, 0)  # 0 unseen, 1 on the stack, 2 done

    def visit(claim_id: str, stack: list[str]) -> None:
        state[claim_id] = 1
        spec = specs[claim_id]
        for i, dep in enumerate(spec.depends_on):
            if state.get(dep) == 1:
                chain = " -> ".join([*stack[stack.index(dep):], claim_id, dep])
                errors.append(f"{spec.where}:{spec.line('depends_on', i)}: depends_on: cycle {chain}")
            elif state.get(dep) == 0:
                visit(dep, [*stack, claim_id])
        state[claim_id] = 2

    for claim_id in specs:
        if state[claim_id] == 0:
            visit(claim_id, [])
    return errors


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
