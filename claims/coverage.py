"""The claim-coverage gate CI runs: prose may only carry numbers that claims produced.

Rules (each finding names file:line):
  number-without-claim   a standalone number in content/ prose outside a claim reference
                         (code spans, Jinja expressions, URLs and allowed phrases excepted)
  unknown-claim          content cites a claim id that has no spec
  headline-not-cited     a headline claim that no content file cites
  banned-phrase          an overclaiming phrase from claims/banned_phrases.txt
  control-missing        a required claim with neither a control nor a written reason
  criterion-changed      a claim ever declared preregistered whose criterion changed afterwards
                         without a reason in its criterion_changes (read from git; dropping the
                         flag is itself such a change)
  criterion-note         a criterion_changes note naming a commit that does not exist or did not
                         change the claim's criterion (or the field it names)
  history-unavailable    no full git history (a shallow clone, a tarball): nothing above can be checked
  baseline-missing       a headline claim that expects an effect names no baselines and gives no
                         why_no_baseline
  control-unmatched      a control that ranks the effect among random draws (rank) declares neither
                         matched_on nor why_unmatched
  null-unbounded         a null claim declares neither its metric's range nor the rate it moves from
                         (headroom), so its room to fail cannot be checked
  headline-not-standing  a headline claim that is not verified (failed, blocked, stale, error) and
                         carries no waiver
Allowed phrases (content/allowed-numbers.yaml: [{phrase, reason}]) cover names such as
"Gemma 3"; each must say why the number in it is not a measurement.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from claims.errors import SpecError
from claims.numbers import find_numbers
from claims.project import Project
from claims.spec import ClaimSpec

CITE = re.compile(r"""\b(?:claim|cite|figure)\(\s*["']([^"']+)["']""")
RESTS_ON = re.compile(r"""\{%-?\s*rests_on\s+(.*?)-?%\}""")
QUOTED = re.compile(r"""["']([^"']+)["']""")
_MASKS = [
    re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S),  # Jinja
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)]*\)|https?://\S+"),  # link targets and bare URLs
    re.compile(r"^#{1,6} .*$|^\s*\[\^?[\w-]+\]:", re.M),  # headings are titles; footnote labels
    re.compile(r"\[\^[\w-]+\]"),  # footnote references
    re.compile(r"\[@[^\]\n]*\]"),  # citations of the literature: [@key] (site_build.common.bibliography)
]
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def banned_phrases(project: Project) -> list[str]:
    for path in (project.root / "claims" / "banned_phrases.txt", Path(__file__).with_name("banned_phrases.txt")):
        if path.is_file():
            return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return []


def allowed_phrases(project: Project) -> list[str]:
    path = project.content_dir / "allowed-numbers.yaml"
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text()) or []
    phrases = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not entry.get("phrase") or not entry.get("reason"):
            raise SpecError(f"{project.rel(path)}: entry {i + 1} needs a phrase and a reason")
        phrases.append(str(entry["phrase"]))
    return phrases


def _blank(match: re.Match[str]) -> str:
    """Replace a masked span by spaces, keeping newlines so that line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def prose_numbers(text: str, allowed: list[str]) -> list[tuple[int, str]]:
    """(line, number) for every number in prose that is not masked or allowed."""
    text = _FENCE.sub(_blank, text)
    for mask in _MASKS:
        text = mask.sub(_blank, text)
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        covered = [m.span() for p in allowed for m in re.finditer(re.escape(p), line)]
        for m in find_numbers(line):
            if not any(a <= m.start() and m.end() <= b for a, b in covered):
                found.append((lineno, m.group(0).strip()))
    return found


def _headline_outcomes(project: Project, specs: dict[str, ClaimSpec]) -> list[Any]:
    """The verify outcome (nothing run) of every headline claim, dependencies propagated."""
    if not any(s.headline for s in specs.values()):
        return []
    from claims.verify import verify

    outcomes, _ = verify(project, specs, run=False)
    return [o for o in outcomes if o.headline]


def run_coverage(project: Project, specs: dict[str, ClaimSpec]) -> dict[str, Any]:
    from claims.history import available

    findings: list[dict[str, str]] = []
    history_problem = available(project.root)

    def add(rule: str, where: str, message: str) -> None:
        findings.append({"rule": rule, "where": where, "message": message})

    banned = [(p, re.compile(rf"(?<!\w){re.escape(p)}(?!\w)", re.I)) for p in banned_phrases(project)]
    allowed = allowed_phrases(project)
    cited: dict[str, list[str]] = {}
    files = sorted(project.content_dir.rglob("*.md")) if project.content_dir.is_dir() else []
    for path in files:
        rel = project.rel(path)
        text = path.read_text(encoding="utf-8")
        for lineno, number in prose_numbers(text, allowed):
            add("number-without-claim", f"{rel}:{lineno}",
                f"{number!r} is typed by hand: cite a claim, or list the phrase in content/allowed-numbers.yaml")
        from site_build.common.prose import typed_numbers  # numbers made inside {{ }} (literals, arithmetic)

        for lineno, number in typed_numbers(text, rel):
            add("number-without-claim", f"{rel}:{lineno}", f"{number!r} is made by a template expression, not read "
                "from a claim: cite a claim field instead")
        for lineno, line in enumerate(text.splitlines(), 1):
            ids = [m.group(1) for m in CITE.finditer(line)]
            ids += [q.group(1) for m in RESTS_ON.finditer(line) for q in QUOTED.finditer(m.group(1))]
            for claim_id in ids:
                cited.setdefault(claim_id, []).append(f"{rel}:{lineno}")
                if claim_id not in specs:
                    add("unknown-claim", f"{rel}:{lineno}", f"cites {claim_id!r}, which has no spec")
            for phrase, pattern in banned:
                if pattern.search(line):
                    add("banned-phrase", f"{rel}:{lineno}", f"overclaiming phrase {phrase!r}")
    for spec in specs.values():
        where = project.rel(project.specs_dir / f"{spec.id}.yaml")
        for phrase, pattern in banned:
            if pattern.search(spec.statement):
                add("banned-phrase", f"{where}: statement", f"overclaiming phrase {phrase!r}")
        if spec.headline and spec.id not in cited:
            add("headline-not-cited", where, f"headline claim {spec.id!r} is never cited in content/")
        if spec.status == "required" and spec.control == "none" and not (spec.why_no_control or "").strip():
            add("control-missing", where, "no control and no written reason")
        if spec.headline and spec.expect == "effect" and not spec.baselines and not (spec.why_no_baseline or "").strip():
            add("baseline-missing", where, f"headline claim {spec.id!r} expects an effect but names no baselines "
                "(the model's confidence, length, the question's family, a format regex...) and no why_no_baseline")
        control = spec.control_spec
        if control is not None and control.rank is not None and not control.matched_on \
                and not (control.why_unmatched or "").strip():
            add("control-unmatched", where, f"the control of {spec.id!r} ranks the effect among random draws but "
                "declares no matched_on (covariates and tolerances) and no why_unmatched")
        if spec.expect == "null" and spec.status == "required" and spec.range is None and spec.headroom is None:
            add("null-unbounded", where, f"null claim {spec.id!r} declares neither range (its metric's bounds) nor "
                "headroom (the rate it moves from): its room to fail cannot be checked")
        if history_problem is None:
            from claims.history import history, note_problems, undocumented_after_preregistration

            changes = history(project, spec)
            for change in undocumented_after_preregistration(changes):
                when = f"in {change.commit} ({change.date[:10]})" if change.commit else "in the work tree"
                add("criterion-changed", where,
                    f"preregistered claim {spec.id!r}: {change.field} changed {when} from {change.was!r} to "
                    f"{change.now!r}; record why in criterion_changes (commit or field, and why)")
            for problem in note_problems(project, spec, changes):
                add("criterion-note", where, f"{spec.id!r}: {problem}")
    if history_problem is not None:
        add("history-unavailable", project.rel(project.specs_dir),
            f"the criterion history cannot be checked: {history_problem}")
    for outcome in _headline_outcomes(project, specs):
        if outcome.status != "verified" and not outcome.waiver:
            why = f": {outcome.reason}" if outcome.reason else (f": {outcome.problems[0]}" if outcome.problems else "")
            add("headline-not-standing", project.rel(project.specs_dir / f"{outcome.id}.yaml"),
                f"headline claim {outcome.id!r} is {outcome.status}{why}; fix it, or record a waiver with its reason")
    without_control = {s.id: s.why_no_control for s in specs.values() if s.control == "none"}
    not_required = {s.id: f"{s.status}: {s.reason}" for s in specs.values() if s.status != "required"}
    summary = (f"{len(findings)} finding(s); {len(specs)} claims, {len(files)} content files, "
               f"{len(cited)} claims cited, {len(without_control)} without control (reason given)")
    return {"summary": summary, "findings": findings, "cited": cited,
            "claims_without_control": without_control, "claims_not_required": not_required}
