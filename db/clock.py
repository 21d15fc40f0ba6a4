"""The database server's clock, for leases: stamps and staleness are judged by one clock, never a worker's.

A worker whose clock runs 10 s slow would otherwise stamp heartbeats in the
past and see live leases of others as stale. These SQL expressions compile to
`now()` on Postgres and to SQLite's own clock (in the text form SQLAlchemy
stores datetimes in, so that comparisons with stored columns are correct).

Postgres also knows when it started: a lease cannot go stale before the
server has been up for one lease period (`lease_is_stale`), so that after a
database restart the workers that held units have time to beat again before
anyone takes their units over.
"""

from __future__ import annotations

from sqlalchemy import DateTime, Float, and_, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{offset}) || '000'"  # microseconds, as SQLAlchemy writes them


class server_now(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """The server's current time."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(server_now)
def _now_default(element, compiler, **kw) -> str:
    return "now()"


@compiles(server_now, "sqlite")
def _now_sqlite(element, compiler, **kw) -> str:
    return _SQLITE_NOW.format(offset="")


class seconds_ago(FunctionElement):  # noqa: N801
    """The server's time `seconds` ago (a bound float)."""

    type = DateTime(timezone=True)
    inherit_cache = True

    def __init__(self, seconds) -> None:  # a number, or a bound parameter
        super().__init__(seconds if isinstance(seconds, ColumnElement) else literal(float(seconds), Float))


@compiles(seconds_ago)
def _ago_default(element, compiler, **kw) -> str:
    (seconds,) = element.clauses
    return f"(now() - ({compiler.process(seconds, **kw)} * interval '1 second'))"


@compiles(seconds_ago, "sqlite")
def _ago_sqlite(element, compiler, **kw) -> str:
    (seconds,) = element.clauses
    return _SQLITE_NOW.format(offset=f", '-' || ({compiler.process(seconds, **kw)}) || ' seconds'")


class age_s(FunctionElement):  # noqa: N801
    """Seconds from a stored server-clock stamp to the server's now."""

    type = Float()
    inherit_cache = True


@compiles(age_s)
def _age_default(element, compiler, **kw) -> str:
    (column,) = element.clauses
    return f"extract(epoch from (now() - {compiler.process(column, **kw)}))"


@compiles(age_s, "sqlite")
def _age_sqlite(element, compiler, **kw) -> str:
    (column,) = element.clauses
    return f"((julianday('now') - julianday({compiler.process(column, **kw)})) * 86400.0)"


class server_uptime_s(FunctionElement):  # noqa: N801
    """Seconds since the database server started (Postgres); SQLite is a file, always 'up'."""

    type = Float()
    inherit_cache = True


@compiles(server_uptime_s)
def _uptime_default(element, compiler, **kw) -> str:
    return "extract(epoch from (now() - pg_postmaster_start_time()))"


@compiles(server_uptime_s, "sqlite")
def _uptime_sqlite(element, compiler, **kw) -> str:
    return "1e18"


def lease_is_stale(heartbeat_column, lease_timeout_s: float) -> ColumnElement[bool]:
    """No beat for `lease_timeout_s` by the server's clock, and the server has been up at least that long."""
    return and_(heartbeat_column < seconds_ago(lease_timeout_s), server_uptime_s() >= lease_timeout_s)


def lease_is_live(heartbeat_column, lease_timeout_s: float) -> ColumnElement[bool]:
    """The complement of `lease_is_stale` for a lease that exists (a NULL stamp is neither)."""
    return func.coalesce(~lease_is_stale(heartbeat_column, lease_timeout_s), False)
