"""`python -m claims`: the command line. Ctrl-C at any moment, start-up included, exits 130.

Start-up (imports, reading the specs) writes nothing, so a Ctrl-C there stops the process at
once: an interrupt raised as an exception can be swallowed by library code that ignores errors
(a callback run from C). The CLI hands Ctrl-C back to Python (KeyboardInterrupt, which its
commands turn into exit 130 after cleaning up) when work that writes begins.

Before the CLI, `claims` is made sure to be this engine: a folder named `claims/` without
`__init__.py` ahead of the engine on sys.path (a project's old `claims/specs/` layout, in the
current directory) is imported as an empty namespace package in the engine's place when the engine
is installed in editable mode, and experiments then fail on `from claims import Result`. This file
was found inside the real engine, so the engine's package is loaded from here instead.
"""

import importlib.util
import os
import signal
import sys
from pathlib import Path


def _interrupted_at_start(signum, frame):  # noqa: ANN001, ARG001
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_at_start)
_package = sys.modules.get("claims")
if _package is not None and getattr(_package, "__file__", None) is None:
    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location("claims", _here / "__init__.py",
                                                   submodule_search_locations=[str(_here)])
    _engine = importlib.util.module_from_spec(_spec)
    sys.modules["claims"] = _engine
    _spec.loader.exec_module(_engine)


def _pin_environment() -> None:
    """`[tool.claims] environment` set before the CLI imports anything that loads a library: OpenBLAS
    (numpy's, scipy's) reads OPENBLAS_CORETYPE when it is loaded, not when first used. A project that
    cannot be read here is left to the CLI, which reports it in one line."""
    from claims.errors import ClaimsError
    from claims.project import Project

    args = sys.argv[1:]
    root = next((a.split("=", 1)[1] for a in args if a.startswith("--project=")), None)
    if root is None and "--project" in args[:-1]:
        root = args[args.index("--project") + 1]
    try:
        project = Project.at(Path(root)) if root else Project.discover()
        project.apply_environment()
    except (ClaimsError, OSError):
        pass


try:
    _pin_environment()
    from claims.cli import main

    main()
except KeyboardInterrupt:  # while the CLI shuts down
    sys.stderr.write("interrupted\n")
    sys.exit(130)
