"""Engines and sessions. The caller owns the transaction (`with session.begin()`).

On Postgres every connection is bounded, so that one stuck process cannot
stall others and a cluster of workers cannot exhaust the server:

- a pool of `WATTSWEEP_POOL_SIZE` (default 2: a worker's main thread and its
  heartbeat thread) and no overflow; a third concurrent user waits, then fails;
- `connect_timeout` and TCP keepalives (plus `tcp_user_timeout`), so a dead
  server or a cut network is noticed in about a minute, not at the kernel's
  two hours;
- `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout`
  (sent as startup options): a frozen worker that holds its host's lock inside
  a transaction is disconnected by the server, which releases the lock;
- `jit` off: the result views' queries are large expressions over many rows, so
  Postgres's cost model asks for JIT compilation, whose LLVM optimisation and
  emission then take most of the query's time (v_model_summary over a
  100,000-run sweep: 6.4-9.9 s with JIT, of which 5.4-8.5 s compiling; 1.4-1.6 s
  without) and never pay back within one query.

Behind PgBouncer in transaction mode (`WATTSWEEP_PGBOUNCER=1`) startup options
cannot be used (PgBouncer refuses them) and server-side prepared statements
would land on another server connection: neither is sent, and the timeouts
come from the roles' own settings (migrations/roles.sql, run by migration 0013).
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from db.settings import Settings, get_settings

APPLICATION_NAME = "wattsweep"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message names the (masked) URL."""


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    settings = settings or get_settings()
    # use_native_hstore off: no table has an HSTORE column, and with it on each engine's first connection asks the
    # server for the hstore type, one more round trip for every process
    return create_engine(url, pool_pre_ping=True, pool_size=settings.pool_size, max_overflow=0, pool_timeout=60,
                         connect_args=postgres_connect_args(settings), use_native_hstore=False)


def postgres_connect_args(settings: Settings) -> dict:
    """libpq connection parameters (psycopg passes them through) for the application's connections."""
    args: dict = {
        "connect_timeout": settings.connect_timeout_s,
        "application_name": APPLICATION_NAME,
        "keepalives": 1,
        "keepalives_idle": 30,  # seconds of silence before the first probe
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 60_000,  # ms: data unacknowledged this long means the peer is gone
    }
    if settings.pgbouncer:
        args["prepare_threshold"] = None  # psycopg: never PREPARE (a pooled server connection would not have it)
        return args
    timeouts = {"statement_timeout": settings.statement_timeout_s, "lock_timeout": settings.lock_timeout_s,
                "idle_in_transaction_session_timeout": settings.idle_in_transaction_timeout_s}
    args["options"] = " ".join([*(f"-c {name}={int(seconds * 1000)}" for name, seconds in timeouts.items()),
                                "-c jit=off"])
    return args


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FOREIGN KEY ... CASCADE without it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (status, report) don't block the running sweep
    cursor.close()


_engines: dict[str | None, Engine] = {}  # get_engine's, by the URL asked for (None: the settings')


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for `url`, made once."""
    if url not in _engines:
        _engines.setdefault(url, make_engine(url or get_settings().database_url))
    return _engines[url]


def dispose_engines() -> None:
    """Close the pooled connections of every engine get_engine made, now: at a process's end the collector's last
    pass would close them, a pass that a command ending with frozen objects (scheduler.cli.options.collector_paused)
    does not make. Checked-out connections are closed when they are checked in; the engines stay usable."""
    for engine in _engines.values():
        engine.dispose()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)
