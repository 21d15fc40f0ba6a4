"""`main` builds only the group of the command it runs (scheduler.cli.app_for): each command must resolve to its
own group, with the same Click command as in the whole app; anything else gets the whole app."""

from __future__ import annotations

import typer

from scheduler.cli import app, app_for


def shape(command) -> tuple:
    """What a user sees of a command: its help, options and sub-commands."""
    params = [(p.name, p.opts, p.default) for p in command.params]
    subcommands = {name: shape(sub) for name, sub in getattr(command, "commands", {}).items()}
    return type(command), command.help, params, subcommands


def test_each_command_resolves_to_its_own_group() -> None:
    whole = typer.main.get_command(app).commands
    for name, command in whole.items():
        sliced = typer.main.get_command(app_for([name, "--help"])).commands
        assert name in sliced, name
        assert len(sliced) < len(whole), name
        assert shape(sliced[name]) == shape(command), name


def test_no_command_or_an_unknown_one_gets_the_whole_app() -> None:
    for args in ([], ["--help"], ["reprot"], ["codecarbon"]):
        assert app_for(args) is app
