"""`python -m claims`: the command line. Ctrl-C at any moment, start-up included, exits 130.

Start-up (imports, reading the specs) writes nothing, so a Ctrl-C there stops the process at
once: an interrupt raised as an exception can be swallowed by library code that ignores errors
(a callback run from C). The CLI hands Ctrl-C back to Python (KeyboardInterrupt, which its
commands turn into exit 130 after cleaning up) when work that writes begins.
"""

import os
import signal
import sys


def _interrupted_at_start(signum, frame):  # noqa: ANN001, ARG001
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_at_start)
try:
    from claims.cli import main

    main()
except KeyboardInterrupt:  # while the CLI shuts down
    sys.stderr.write("interrupted\n")
    sys.exit(130)
