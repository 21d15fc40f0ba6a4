"""Run a transaction again while the database is unreachable, with exponential backoff.

A worker that holds a finished run must not lose it because Postgres restarted
or the network blinked: it keeps the reading in memory and retries the whole
transaction (not just the failed statement) until the database is back or the
deadline passes. Errors that are not about the connection are raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_connection_error(error: BaseException) -> bool:
    """Whether `error` means 'the database is unreachable', as opposed to a bad statement."""
    if isinstance(error, OperationalError):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def run_in_transaction(
    sessions: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    retry_for_s: float,
    first_wait_s: float = 0.5,
    max_wait_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`work(session)` inside `sessions.begin()`; on a connection error, wait and run it again.

    Waits 0.5 s, 1 s, 2 s ... (capped at `max_wait_s`) and gives up, re-raising
    the last error, once `retry_for_s` have passed.
    """
    deadline = time.monotonic() + retry_for_s
    wait_s = first_wait_s
    while True:
        try:
            with sessions.begin() as session:
                return work(session)
        except Exception as error:
            if not is_connection_error(error) or time.monotonic() + wait_s > deadline:
                raise
            log.warning("database unreachable (%s); retrying in %.1f s", type(error).__name__, wait_s)
            sleep(wait_s)
            wait_s = min(wait_s * 2, max_wait_s)
