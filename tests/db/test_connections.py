"""The application's Postgres connections are bounded: two per process, and timeouts the server enforces.

The frozen-process case is real: a child process takes its host's lock inside a transaction and is
SIGSTOPped, as a worker stopped by the kernel, a debugger or a hung NFS read would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from db.results.attribution import lock_host
from db.session import make_engine, postgres_connect_args, session_factory
from db.settings import make_settings


def test_pool_is_two_connections_main_and_heartbeat(postgres_url):
    engine = session_factory(postgres_url).kw["bind"]
    assert (engine.pool.size(), engine.pool._max_overflow) == (2, 0)
    # Four threads hammer one engine, as a worker's main, heartbeat and anything else would: never a third.
    seen, stop = [], threading.Event()

    def use() -> None:
        while not stop.is_set():
            with engine.connect() as connection:
                seen.append(connection.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'wattsweep'")).scalar())

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert seen and max(seen) <= 2


def test_server_enforces_the_timeouts_on_every_connection(postgres_url):
    engine = make_engine(postgres_url, make_settings(statement_timeout_s=0.5, lock_timeout_s=0.25,
                                                      idle_in_transaction_timeout_s=1))
    with engine.connect() as connection:
        shown = {name: connection.execute(text(f"SHOW {name}")).scalar()
                 for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "jit")}
        assert shown == {"statement_timeout": "500ms", "lock_timeout": "250ms",
                         "idle_in_transaction_session_timeout": "1s", "jit": "off"}
        started = time.monotonic()
        with pytest.raises(OperationalError, match="canceling statement due to statement timeout"):
            connection.execute(text("SELECT pg_sleep(10)"))
        assert time.monotonic() - started < 5
    engine.dispose()


def test_connect_timeout_and_keepalives_are_set():
    args = postgres_connect_args(make_settings())
    assert args["connect_timeout"] == 10 and args["keepalives"] == 1 and args["keepalives_idle"] == 30
    assert "-c statement_timeout=300000" in args["options"]
    bouncer = postgres_connect_args(make_settings(pgbouncer=True))
    assert "options" not in bouncer and bouncer["prepare_threshold"] is None


def test_unreachable_server_is_an_error_not_a_hang():
    engine = make_engine("postgresql+psycopg://x@127.0.0.1:9/x", make_settings(connect_timeout_s=2))
    started = time.monotonic()
    with pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - started < 10
    engine.dispose()


FROZEN_STORE = textwrap.dedent("""
    import os, signal, sys
    from db.results.attribution import lock_host
    from db.session import session_factory
    with session_factory(sys.argv[1]).begin() as session:
        lock_host(session, "node-frozen")
        print("locked", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen mid-store, holding the host's lock
""")


def test_a_frozen_process_holding_its_hosts_lock_does_not_stall_the_host(postgres_url):
    env = os.environ | {"WATTSWEEP_IDLE_IN_TRANSACTION_TIMEOUT_S": "2", "WATTSWEEP_LOCK_TIMEOUT_S": "1"}
    frozen = subprocess.Popen([sys.executable, "-c", FROZEN_STORE, postgres_url], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert frozen.stdout.readline().strip() == "locked"
        started = time.monotonic()
        sessions = session_factory(postgres_url)
        acquired_s = None
        while time.monotonic() - started < 30:
            try:
                with sessions.begin() as session:
                    session.execute(text("SET LOCAL lock_timeout = '500ms'"))
                    lock_host(session, "node-frozen")  # another worker of that host storing its window
                acquired_s = time.monotonic() - started
                break
            except OperationalError:
                time.sleep(0.2)
        # Before: blocked for as long as the process stays frozen. Now: the server ends its idle transaction.
        assert acquired_s is not None and acquired_s < 10
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.kill()
        frozen.wait(10)
