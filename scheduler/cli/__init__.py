"""The `wattsweep` command line: one Typer app assembled from one module per group of commands.

Layers: `options` (shared consoles, options, database opening) at the bottom,
then the command modules, then this file, which only assembles them. Heavy
imports happen inside commands, so `--help` is fast.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from scheduler.cli import database, distributed, label, local, results, slurm, status, study
from scheduler.cli.options import errors

app = typer.Typer(help="Measure the energy and carbon cost of AI inference across a task x model matrix.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
for commands in (local.app, results.app, label.app, status.app, distributed.app, slurm.app, study.app):
    app.add_typer(commands)
app.add_typer(database.db_app, name="db")


def main() -> None:
    from db.settings import SettingsError

    try:
        app()
    except SettingsError as error:  # a bad WATTSWEEP_ variable, read wherever a command first needs settings
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted: the runs finished so far are stored")
        sys.exit(130)
