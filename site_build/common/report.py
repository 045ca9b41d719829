"""What a build reports: its warnings, and the --strict rule that turns any of them into a refusal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claims.errors import BuildError
from claims.progress import log
from site_build.common.outputs import Stats


@dataclass
class Report:
    out: Path
    stats: Stats
    warnings: list[str] = field(default_factory=list)
    gather_s: float = 0.0


def claim_warnings(study: Any) -> list[str]:
    """One line per required claim that does not stand, saying why."""
    lines = []
    for record in study.not_standing:
        why = "; ".join(record.outcome.problems) or record.outcome.reason or "no reason recorded"
        lines.append(f"{record.spec_path}: claim {record.id!r} is {record.status} (shown as such): {why}")
    return lines


def refuse_or_warn(what: str, warnings: list[str], strict: bool) -> None:
    """Under --strict any warning stops the build before a file is written; else each is logged."""
    if strict and warnings:
        lines = "\n".join(f"  {w}" for w in warnings)
        raise BuildError(f"{what} --strict: {len(warnings)} problem(s), nothing written:\n{lines}")
    for warning in warnings:
        log(f"warning: {warning}")
