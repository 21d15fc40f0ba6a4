"""Run a transaction again while the database is unreachable, with exponential backoff.

A worker that holds a finished run must not lose it because Postgres restarted
or the network blinked: it keeps the reading in memory and retries the whole
transaction (not just the failed statement) until the database is back or the
deadline passes. Errors that are not about the connection are raised at once.
The loop is tenacity's; this module says when to retry, how long to wait and what to log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_before_delay, wait_exponential

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
    retrying = Retrying(
        retry=retry_if_exception(is_connection_error),
        wait=wait_exponential(multiplier=first_wait_s, exp_base=2, max=max_wait_s),
        stop=stop_before_delay(retry_for_s),  # give up rather than sleep past the deadline
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,  # the last database error, not tenacity's RetryError
    )

    def attempt() -> T:
        with sessions.begin() as session:
            return work(session)

    return retrying(attempt)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("database unreachable (%s); retrying in %.1f s", type(error).__name__, state.upcoming_sleep)
