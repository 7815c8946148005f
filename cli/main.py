"""Root of the ``softlabel`` console script; each component contributes its own commands."""

from __future__ import annotations

import typer

from softlabel.service import cli as service_cli
from softlabel.trainer import cli as trainer_cli
from softlabel.worker import cli as worker_cli
from softlabel.worker.jobs import rq_worker

from . import demo

app = typer.Typer(
    name="softlabel",
    help="Superpixel-guided soft labels for medical image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in worker_cli.app.registered_commands:
    app.registered_commands.append(command)
for command in rq_worker.app.registered_commands:
    app.registered_commands.append(command)
for command in service_cli.app.registered_commands:
    app.registered_commands.append(command)
for group in service_cli.app.registered_groups:
    app.registered_groups.append(group)
for command in trainer_cli.app.registered_commands:
    app.registered_commands.append(command)
for group in trainer_cli.app.registered_groups:
    app.registered_groups.append(group)
for command in demo.app.registered_commands:
    app.registered_commands.append(command)
