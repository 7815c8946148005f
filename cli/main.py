"""Root of the ``softlabel`` console script; each component contributes its own commands."""

from __future__ import annotations

import typer

from worker import cli as worker_cli

app = typer.Typer(
    name="softlabel",
    help="Superpixel-guided soft labels for medical image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in worker_cli.app.registered_commands:
    app.registered_commands.append(command)
