"""What every command shares: the consoles, the one-line `fail`, common options, and opening the database.

The bottom layer of the CLI package: command modules import this, never each
other's internals, and this imports no command module.
"""

from __future__ import annotations

import functools
import gc
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(width=None if sys.stdout.isatty() else 160)  # piped output keeps whole table rows
errors = Console(stderr=True)

SweepArg = Annotated[str | None, typer.Argument(help="Sweep id or name (default: the latest sweep).")]
SweepFile = Annotated[Path, typer.Argument(help="Sweep file (YAML).")]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", envvar="WATTSWEEP_DATABASE_URL", show_envvar=True,
                             help="SQLAlchemy URL; default sqlite:///wattsweep.db.")
]
BrokerOpt = Annotated[
    str | None, typer.Option("--broker-url", envvar="WATTSWEEP_BROKER_URL", show_envvar=True,
                             help="Redis URL of the broker; default redis://127.0.0.1:6379/0.")
]


def collector_paused(command):
    """`command` run with Python's cycle collector off, and back on after it: a report of a 10,000-model sweep
    allocates millions of objects and frees them by reference counting, and the collector's passes over them
    (looking for cycles there are none of) cost 0.1-0.25 s of its second. Only for commands that end.

    What the command kept (modules, SQLAlchemy's mappers and caches: most of a small report's objects) is frozen
    before the collector comes back on: left young, it was walked by the first pass after the pause (30 ms) and
    again by the interpreter's last passes at exit (40 ms). Those passes closed the database connections; the
    command's engines are disposed instead (the connection's Terminate sent, SQLite's WAL file folded back)."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        if not gc.isenabled():
            return command(*args, **kwargs)
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if "db.session" in sys.modules:  # the command opened the database (importing it here costs 0.2 s)
                sys.modules["db.session"].dispose_engines()
            gc.freeze()
            gc.enable()
    return run


def fail(message: str, code: int = 2) -> NoReturn:
    message = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())  # one line, always
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_for(database_url: str | None):
    from db.settings import SettingsError, get_settings, make_settings

    try:
        return make_settings(database_url=database_url) if database_url else get_settings()
    except SettingsError as error:
        fail(str(error))


def open_sessions(database_url: str | None, *, migrate_sqlite: bool = False):
    """A session factory for a database whose schema is in place."""
    from db.migrate import is_up_to_date, upgrade
    from db.session import DatabaseUnavailable, session_factory

    url = settings_for(database_url).database_url
    try:
        if not is_up_to_date(url):
            if migrate_sqlite and url.startswith("sqlite"):
                upgrade(url)  # a new local results file: create the schema
            else:
                fail("the database has no wattsweep schema, or an older one: run `wattsweep db upgrade`")
    except DatabaseUnavailable as error:
        fail(str(error))
    return session_factory(url)


def settings_with_broker(database_url: str | None, broker_url: str | None):
    """Settings with both URLs, after checking that Redis answers (exit 2 with the masked URL if not)."""
    from worker.contract.broker import BrokerUnavailable, check_broker

    settings = settings_for(database_url)
    if broker_url:
        settings = settings.model_copy(update={"broker_url": broker_url})
    try:
        check_broker(settings.broker_url)
    except BrokerUnavailable as error:
        fail(str(error))
    return settings


def celery_for(settings):
    from worker.contract.celery_app import make_app

    return make_app(settings.broker_url, settings.visibility_timeout_s)


def load_spec(sweep_file: Path, *, size_models: bool = True):
    """The validated sweep file, or exit 2 with the message naming the field and the fix. `size_models`: check
    that `model_gpus: auto` can size each model it names (`pull`, which fetches them, does not)."""
    from scheduler.spec.reading import SpecError, load_sweep

    try:
        return load_sweep(sweep_file, size_models=size_models)
    except SpecError as error:
        fail(str(error))


def find_sweep_or_fail(session, sweep: str | None):
    from db.queue.sweeps import SweepNotFound, find_sweep

    try:
        return find_sweep(session, ref=sweep)
    except SweepNotFound as error:
        fail(str(error))


def reference_or_fail(session, name: str, energy: str = "gpu") -> None:
    """`--rate-against NAME`: a reference set imported under NAME (`import aienergyscore`), or a sweep."""
    from db.results.references import reference_names

    if name in reference_names(session):
        if energy != "gpu":
            fail(f"--rate-against {name}: the leaderboard publishes GPU energy only; rate with --rating-energy gpu")
        return
    from db.queue.sweeps import SweepNotFound, find_sweep

    try:
        find_sweep(session, ref=name)
    except SweepNotFound as error:
        sets = reference_names(session)
        fail(f"{error}" + (f"; reference sets: {', '.join(sets)}" if sets else
                           "; no reference set imported (wattsweep import aienergyscore FILE)"))


def masked(url: str) -> str:
    from db.settings import mask_url

    return mask_url(url)


def safe_name(name: str) -> str:
    """A sweep name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


def open_out(path: Path):
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")
