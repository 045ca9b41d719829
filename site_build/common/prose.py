"""Content files: Markdown with claim references, rendered for the site, the paper and paper.md.

A content file may start with YAML front matter (`title:`, `nav:`). Its body is a Jinja template
(autoescape on in HTML mode) evaluated with `claim`, `cite` and `figure` (see references.py), then
Markdown through markdown-it-py with tables, footnotes, strikethrough and heading anchors;
links to `other.md` become `other.html`.

Content cannot run code: the Jinja step runs in a sandbox (no `__globals__`, no attribute of a
claim reference beyond its documented fields), and Markdown renders with raw HTML off, so a
`<script>` in content/ reaches the page as text.

A conclusion is bound to the claims it rests on:

    {% rests_on "hneuron-probe-auroc", "hneuron-probe-accuracy" %}
    So the probe detects hallucinations better than random neurons of its size.
    {% endrests_on %}

When every claim named stands, the text is shown as written; otherwise it is struck through with
the reason beside it, and the build warns (build-site --strict fails).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from claims.errors import BuildError
from site_build.common.references import FILTERS, Citations

_FRONT = re.compile(r"\A---\n(.*?\n)---\n", re.S)
_MD_LINK = re.compile(r"^(?![a-z][a-z0-9+.-]*:|/|#)(?P<path>[^#?]*)\.md(?P<rest>[#?].*)?$", re.I)


@dataclass
class Prose:
    """One content file: where it is, its front matter, and its Jinja + Markdown body."""

    path: Path
    rel: str
    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # front matter key -> line

    @property
    def title(self) -> str:
        if self.meta.get("title"):
            return str(self.meta["title"])
        heading = re.search(r"^# (.+)$", self.body, re.M)
        return heading.group(1).strip() if heading else self.path.stem.replace("-", " ").title()

    @property
    def source(self) -> str:
        return self.body


def read(path: Path, rel: str) -> Prose:
    """Read a content file; front matter lines become blank so that line numbers stay right."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"{rel}: cannot read: {exc}") from None
    meta: dict[str, Any] = {}
    lines: dict[str, int] = {}
    match = _FRONT.match(text)
    if match:
        lines = {m.group(1): match.group(1)[: m.start()].count("\n") + 2
                 for m in re.finditer(r"^([A-Za-z_][\w-]*):", match.group(1), re.M)}
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise BuildError(f"{rel}:1: invalid front matter: {exc}") from None
        if not isinstance(meta, dict):
            raise BuildError(f"{rel}:1: front matter must be a mapping (title: ..., nav: ...)")
        text = "\n" * match.group(0).count("\n") + text[match.end():]
    return Prose(path, rel, meta, text, lines)


def _rests_on_extension() -> Any:
    from jinja2 import nodes
    from jinja2.ext import Extension

    class RestsOn(Extension):
        """{% rests_on "id", ... %}conclusion{% endrests_on %} (or {% end %})."""

        tags = {"rests_on"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            ids = [parser.parse_expression()]
            while parser.stream.skip_if("comma"):
                ids.append(parser.parse_expression())
            body = parser.parse_statements(("name:endrests_on", "name:end"), drop_needle=True)
            call = nodes.Call(nodes.Name("rests_on_block", "load"), [nodes.List(ids), nodes.Const(lineno)], [],
                              None, None)
            return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    return RestsOn


@functools.cache
def _jinja(mode: str) -> Any:
    import jinja2
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from site_build.common.references import SAFE_ATTRIBUTES

    class ContentSandbox(ImmutableSandboxedEnvironment):
        """Content may read the documented fields of claim references and nothing else of them, and
        cannot make huge values: a repeated string or list, or a power, is bounded (range() is by
        the sandbox's own MAX_RANGE)."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                            and len(seq) * times > MAX_VALUE_SIZE:
                        raise SecurityError(f"{type(seq).__name__} * {times} is too large (at most "
                                            f"{MAX_VALUE_SIZE:,} items)")
            if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"an exponent of {right} is too large (at most {MAX_EXPONENT})")
            return super().call_binop(context, operator, left, right)

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            allowed = SAFE_ATTRIBUTES.get(type(obj).__name__)
            if allowed is not None:
                return attr in allowed
            return super().is_safe_attribute(obj, attr, value)

    env = ContentSandbox(autoescape=(mode == "html"), undefined=jinja2.StrictUndefined,
                         keep_trailing_newline=True, extensions=[_rests_on_extension()])
    env.filters.update(FILTERS)
    return env


#: Bounds in the content sandbox: the longest string or list an expression may make, the largest power.
MAX_VALUE_SIZE = 100_000
MAX_EXPONENT = 64
#: Calls whose arguments are ids and line numbers, not quantities a reader sees.
_REFERENCES = frozenset({"claim", "cite", "figure", "rests_on_block"})


def typed_numbers(source: str, rel: str) -> list[tuple[int, str]]:
    """(line, text) of every number a template expression makes that is not a claim field: a
    literal (`{{ "73.2%" }}`, `{% set n = 73 %}`) or arithmetic (`{{ 70 + 3 }}`, `{{ claim("x").value
    * 100 }}`). Ids and formatting arguments (`claim("id")`, `| num(2)`, `.ci[0]`) are not numbers
    a reader sees. A template that does not parse is left to the build, which names its error."""
    import jinja2
    from jinja2 import nodes

    from claims.numbers import find_numbers

    try:
        tree = _jinja("html").parse(source, name=rel)
    except jinja2.TemplateSyntaxError:
        return []
    found: list[tuple[int, str]] = []

    def rooted(node: nodes.Node) -> bool:  # a claim reference, or a field, filter or method of one
        while isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Filter | nodes.Call):
            if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name in _REFERENCES:
                return True
            node = node.node
        return False

    def visit(node: nodes.Node, formatting: bool = False) -> None:
        if isinstance(node, nodes.TemplateData):
            return
        if isinstance(node, nodes.Const) and not formatting:
            text = node.value if isinstance(node.value, str) else (
                "" if isinstance(node.value, bool) or node.value is None else str(node.value))
            found.extend((node.lineno, m.group(0).strip()) for m in find_numbers(str(text)))
            return
        if isinstance(node, nodes.BinExpr | nodes.UnaryExpr) and not formatting:
            found.append((node.lineno, "a number computed in the template"))
            return
        if isinstance(node, nodes.Call):
            visit(node.node, formatting)
            args = formatting or rooted(node)
            for arg in [*node.args, *(k.value for k in node.kwargs), node.dyn_args, node.dyn_kwargs]:
                if arg is not None:
                    visit(arg, args)
            return
        if isinstance(node, nodes.Filter | nodes.Test):
            if node.node is not None:
                visit(node.node, formatting)
            for arg in [*node.args, *(k.value for k in node.kwargs)]:
                visit(arg, True)  # | num(2), | pct(1): precision, not a quantity
            return
        if isinstance(node, nodes.Getitem):
            visit(node.node, formatting)
            visit(node.arg, True)  # .ci[0]
            return
        for child in node.iter_child_nodes():
            visit(child, formatting)

    visit(tree)
    return found


def _template_line(exc: BaseException, name: str) -> int | None:
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def expand(prose: Prose, cit: Citations) -> str:
    """Evaluate the claim references of a content file (the Jinja step)."""
    import jinja2

    env = _jinja(cit.mode)
    for line, number in typed_numbers(prose.source, prose.rel):  # build-site --strict fails on them
        cit.warnings.append(f"{prose.rel}:{line}: {number!r} is made by a template expression, not read from a "
                            "claim: cite a claim field instead")
    source = cit.bibliography_refs(prose.source, prose.rel)
    try:
        # compiled under the content file's name, so that errors can say file:line
        code = env.compile(source, name=prose.rel, filename=prose.rel)
        template = env.template_class.from_code(env, code, env.make_globals(None))
        return template.render(**cit.globals())
    except jinja2.TemplateSyntaxError as exc:
        raise BuildError(f"{prose.rel}:{exc.lineno}: {exc.message}") from None
    except (jinja2.TemplateError, TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        line = _template_line(exc, prose.rel)
        raise BuildError(f"{prose.rel}:{line or '?'}: {type(exc).__name__}: {exc}") from None


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    md = MarkdownIt("commonmark", {"html": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin).use(anchors_plugin, min_level=1, max_level=4)
    md.core.ruler.push("md_links", _rewrite_md_links)
    return md


def _rewrite_md_links(state: Any) -> None:
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "link_open":
                href = child.attrGet("href") or ""
                match = _MD_LINK.match(href)
                if match:
                    child.attrSet("href", f"{match['path']}.html{match['rest'] or ''}")


def to_html(markdown: str, cit: Citations) -> str:
    """Markdown (with stashed claim fragments) to HTML, fragments restored."""
    return cit.unstash(_markdown().render(markdown))


def render_html(prose: Prose, cit: Citations) -> str:
    return to_html(expand(prose, cit), cit)


def document(shards: list[Prose], cit: Citations) -> str:
    """Shards expanded as one document (so that footnotes and anchors are unique), in the mode of
    `cit` (HTML for pages, Markdown for paper.md)."""
    parts = []
    for shard in shards:
        cit.where = shard.rel
        parts.append(expand(shard, cit).strip() if cit.mode == "md" else expand(shard, cit))
    text = "\n\n".join(parts)
    return text if cit.mode == "md" else to_html(text, cit)
