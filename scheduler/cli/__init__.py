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

# (name, commands): a group without a name adds its commands (and its named sub-groups) at the top level
GROUPS: tuple[tuple[str | None, typer.Typer], ...] = (
    *((None, commands) for commands in (local.app, results.app, label.app, status.app, distributed.app, slurm.app,
                                        study.app)),
    ("db", database.db_app),
)


def make_app(groups: tuple[tuple[str | None, typer.Typer], ...] = GROUPS) -> typer.Typer:
    app = typer.Typer(help="Measure the energy and carbon cost of AI inference across a task x model matrix.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    for name, commands in groups:
        app.add_typer(commands, name=name)
    return app


app = make_app()


def top_level_names(name: str | None, commands: typer.Typer) -> set[str]:
    """The names a group answers to on the command line, as Typer names them."""
    if name is not None:
        return {name}
    return ({info.name or typer.main.get_command_name(info.callback.__name__) for info in commands.registered_commands}
            | {info.name for info in commands.registered_groups})


def app_for(args: list[str]) -> typer.Typer:
    """The app with only the group of the command that `args` name first: Typer builds a Click command from every
    function's signature before it runs one (20 ms for all groups; a report's own group takes a third of that).
    Anything else (`--help`, no command, a misspelt one) gets the whole app, so its help and errors are unchanged."""
    first = args[0] if args else ""
    for name, commands in GROUPS:
        if first in top_level_names(name, commands):
            return make_app(((name, commands),))
    return app


def main() -> None:
    try:
        app_for(sys.argv[1:])()
    except KeyboardInterrupt:
        errors.print("interrupted: the runs finished so far are stored")
        sys.exit(130)
    except Exception as error:
        # a bad WATTSWEEP_ variable, read wherever a command first needs settings. Only db.settings raises it, so
        # it is looked up there once imported: `wattsweep --help` imports no pydantic (0.1 s of its 0.27 s)
        settings = sys.modules.get("db.settings")
        if settings is None or not isinstance(error, settings.SettingsError):
            raise
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
