"""The claims engine: specs, provenance, run-or-reuse, checks, coverage gate, CLI.

`from claims import Estimate, Result` is resolved on first use (PEP 562), so that importing the
package, as `python -m claims` does before its __main__ can catch a Ctrl-C, costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claims.result import Estimate, Result

__all__ = ["Estimate", "Result"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from claims import result

        return getattr(result, name)
    raise AttributeError(f"module 'claims' has no attribute {name!r}")
