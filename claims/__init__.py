"""The claims engine: specs, provenance, run-or-reuse, checks, coverage gate, CLI."""

from claims.result import Estimate, Result

__all__ = ["Estimate", "Result"]
