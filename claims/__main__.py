"""`python -m claims`: calls the CLI, after making sure `claims` is this engine.

A folder named `claims/` without `__init__.py` ahead of the engine on sys.path (a project's old
`claims/specs/` layout, in the current directory) is imported as an empty namespace package in the
engine's place when the engine is installed in editable mode, and experiments then fail on
`from claims import Result`. This file was found inside the real engine, so the engine's package is
loaded from here instead.
"""

import importlib.util
import sys
from pathlib import Path

_package = sys.modules.get("claims")
if _package is not None and getattr(_package, "__file__", None) is None:
    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location("claims", _here / "__init__.py",
                                                   submodule_search_locations=[str(_here)])
    _engine = importlib.util.module_from_spec(_spec)
    sys.modules["claims"] = _engine
    _spec.loader.exec_module(_engine)

from claims.cli import main  # noqa: E402

main()
