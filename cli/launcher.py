"""The ``softlabel`` console entry: starts engine commands without importing the service
and trainer stacks (about 0.4 s of start-up per run), everything else through ``cli.main``."""

from __future__ import annotations

import os
import sys

# The commands of ``worker.cli.app`` (tests/worker/test_cli.py checks the two agree), named
# here so that the choice is made before NumPy is imported.
ENGINE_COMMANDS = frozenset({"soften", "soften-dataset", "preview", "demo-study"})


def main() -> None:
    """Run ``softlabel``; an engine command gets an app holding only the engine's commands."""
    if len(sys.argv) > 1 and sys.argv[1] in ENGINE_COMMANDS:
        # The engine makes no BLAS calls (its kernels thread with OpenMP), but OpenBLAS starts a
        # helper thread per core when NumPy is imported, and each spins for about 0.1 s: CPU
        # the run's own threads need on a small machine (docs/performance.md).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from softlabel.worker import cli as worker_cli

        _exit_now(_exit_code(worker_cli.app, prog_name="softlabel"))
    from .main import app

    app(prog_name="softlabel")


def _exit_code(app, **kwargs) -> int:
    """Run a typer app to its end and return its exit status instead of raising SystemExit."""
    try:
        app(**kwargs)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _exit_now(code: int) -> None:
    """End an engine command without Python's interpreter teardown.

    An engine command has written its outputs (atomically) and joined its threads when it
    returns; tearing down the ~510 modules it imported (NumPy, nibabel, pydantic, typer) then
    takes 50 to 90 ms, a tenth of a whole ``softlabel soften`` run on the 11-class study
    (docs/performance.md). Flush the streams and leave.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
