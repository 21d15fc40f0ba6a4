"""Whole `wattsweep report` and `status` commands on bench/scale.py's big sweep, as a user runs them: a new
interpreter each time (start, imports, SQL, rendering, output), its wall time and its own CPU time (user + sys of
the child process: on a shared machine the wall time says as much about the neighbours as about the command).

Targets (issue 22): every format and `status` of the 10,000-model sweep under 1 s, a small sweep's report under
0.3 s, on a quiet 2-core machine. The last line is the floor under every command: a new interpreter that only
imports the stack and runs SELECT 1 (on this machine about 0.4 s: the small sweep's 0.3 s holds for the report's
own work, bench/scale.py's in-process figures, not for a new interpreter).

    python bench/report_commands.py --build          # once: a kept database with scale.py's sweeps (~1-2 min)
    python bench/report_commands.py [--repeat 3]     # the figures, best of --repeat
    python bench/report_commands.py --small          # the small sweep and `report --help` only
    python bench/report_commands.py --drop           # drop the kept database

The database is bench/scale.py's (10 tasks x 1,000 models x 10 repetitions, 100,000 measured runs, written by
its SQL that mirrors the storage path; the model count, not the run count, sets the rendering time).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.distributed import POSTGRES_ADMIN_URL  # noqa: E402

NAME = "wattsweep_bench_report_commands"
URL = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{NAME}"
BIG, SMALL = "scale-100k", "scale-small"


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(sql))
    admin.dispose()


def build(models: int) -> None:
    from bench import scale
    from bench.distributed import free_redis
    from db.migrate import upgrade
    from db.session import get_engine, session_factory
    from worker.contract.celery_app import make_app

    _admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{NAME}"')
    upgrade(URL)
    with free_redis() as broker:
        sessions, app, engine = session_factory(URL), make_app(broker), get_engine(URL)
        big, seconds = scale.submit(sessions, app, BIG, models)
        print(f"submitted {big.runs:,} runs in {seconds:.1f} s", flush=True)
        with engine.begin() as connection:
            connection.exec_driver_sql(scale.WORKER)
        print(f"measured in SQL in {scale.measure_in_sql(engine, big.sweep_id):.0f} s", flush=True)
        small, _ = scale.submit(sessions, app, SMALL, 1, repetitions=2)
        scale.measure_for_real(sessions, small.sweep_id)
        engine.dispose()
    print(f"kept {URL}")


# Bytecode is written and read as in an installed package: with PYTHONDONTWRITEBYTECODE set (as in some shells and
# containers) every command compiled the project's modules again, 30-40 ms that no user pays.
CHILD_ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(ROOT)}


# What any command pays before its own work, whatever the project does: a new interpreter importing the stack a
# command stands on (Typer and Rich, pydantic-settings, SQLAlchemy's ORM, psycopg) and one query on a new connection,
# ending as a command ends (scheduler.cli.options.collector_paused: engine disposed, objects frozen; left to the
# collector's last passes at exit, the same lines take 0.13 s more).
STACK_FLOOR = """import gc
import typer, rich.console, pydantic_settings, sqlalchemy.orm
from sqlalchemy import create_engine, text
engine = create_engine(URL)
with engine.connect() as connection:
    connection.execute(text("SELECT 1"))
engine.dispose()
gc.freeze()"""


def command(*args: str, code: str = "from scheduler.cli import main; main()") -> tuple[float, float]:
    """(wall, CPU) seconds of `wattsweep ARGS` (or of `code` given ARGS) in a new interpreter, its output thrown
    away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(url: str, repeat: int, sweeps: tuple[str, ...]) -> None:
    out = Path(tempfile.gettempdir()) / f"wattsweep-report-commands-{os.getpid()}.html"
    db = ("--database-url", url)
    for sweep in sweeps:
        commands = {
            "report (table)": ("report", sweep, *db),
            "report --format json": ("report", sweep, "--format", "json", *db),
            "report --format html": ("report", sweep, "--format", "html", "--out", str(out), *db),
            "report --format csv": ("report", sweep, "--format", "csv", *db),
            "report --format csv --level model": ("report", sweep, "--format", "csv", "--level", "model", *db),
            "report --format csv --level cell": ("report", sweep, "--format", "csv", "--level", "cell", *db),
            "status": ("status", sweep, *db),
        }
        for name, args in commands.items():
            load = os.getloadavg()[0]
            wall, cpu = min(command(*args) for _ in range(repeat))
            print(f"{sweep}: {name}: wall {wall:.2f} s, CPU {cpu:.2f} s (load {load:.1f})", flush=True)
    out.unlink(missing_ok=True)
    wall, cpu = min(command("report", "--help") for _ in range(repeat))
    print(f"report --help: wall {wall:.2f} s, CPU {cpu:.2f} s")
    floor = STACK_FLOOR.replace("URL", repr(url.replace("postgresql://", "postgresql+psycopg://", 1)))
    wall, cpu = min(command(code=floor) for _ in range(repeat))
    print(f"the stack's floor (imports, connect, SELECT 1): wall {wall:.2f} s, CPU {cpu:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true", help="build the kept database (bench/scale.py's sweeps)")
    parser.add_argument("--drop", action="store_true", help="drop the kept database")
    parser.add_argument("--models", type=int, default=1000, help="models per task of the big sweep (with --build)")
    parser.add_argument("--database-url", default=URL, help="a database holding the sweeps (default: the kept one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the best is printed")
    parser.add_argument("--small", action="store_true", help="the small sweep's lines only (what starting a command "
                        "costs: seconds, where the big sweep's take minutes)")
    args = parser.parse_args()
    if args.drop:
        _admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        return
    if args.build:
        build(args.models)
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    measure(args.database_url, args.repeat, (SMALL,) if args.small else (BIG, SMALL))


if __name__ == "__main__":
    main()
