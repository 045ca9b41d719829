"""One error base for the engine; each domain has its own subclass.

Exit codes (documented in `python -m claims --help`):
  0  every selected claim stands (or is listed as blocked / not applicable with its reason)
  1  a claim failed: an assertion is false, a result lacks its interval, an experiment raised,
     or a result is stale under --no-run
  2  the input is wrong: a malformed spec, an unknown claim id, a bad option
"""

from __future__ import annotations

import click


class ClaimsError(click.ClickException):
    """Base of every error the engine reports to a user (no traceback)."""

    exit_code = 2


class SpecError(ClaimsError):
    """A claim spec is malformed: the message names file, line and field."""


class GraphError(SpecError):
    """The experiment DAG has a cycle (a module's requires() leads back to itself)."""


class ExpressionError(ClaimsError):
    """An assertion or statement cannot be evaluated (unknown name, bad syntax)."""


class EvaluationFault(ExpressionError):
    """An assertion that parsed but cannot be computed (division by zero, overflow, comparing a
    string with a number): the claim is `error`, not merely failed."""


class ExperimentError(ClaimsError):
    """An experiment module is missing, lacks `run`, raised, or returned a bad result."""

    exit_code = 1


class CacheError(ClaimsError):
    """An artifact or its provenance is missing, stale or corrupt."""

    exit_code = 1


class BuildError(ClaimsError):
    """The site or paper could not be built."""

    exit_code = 1


class ExecutorError(ClaimsError):
    """The executor cannot start: ray is not installed, the cluster is unreachable, a worker cannot
    see the project (exit 2: an option or the set-up is wrong, no claim was checked)."""
