"""The ``softlabel`` console entry: starts engine commands without importing the service
and trainer stacks (about 0.4 s of start-up per run), everything else through ``cli.main``."""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``softlabel``; an engine command gets an app holding only the engine's commands."""
    from worker import cli as worker_cli

    engine_commands = {info.name or info.callback.__name__.replace("_", "-") for info in worker_cli.app.registered_commands}
    if len(sys.argv) > 1 and sys.argv[1] in engine_commands:
        worker_cli.app(prog_name="softlabel")
        return
    from cli.main import app

    app(prog_name="softlabel")
