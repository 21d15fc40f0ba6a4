"""End reader and node sessions that outstay their limits (migration 0020's `wattsweep_end_stale_sessions`).

Why on our side: every timeout Postgres enforces per session is one the session may change. A reader that sets
`idle_in_transaction_session_timeout = 0` and leaves a transaction open after reading `jobs` holds a lock that
makes the next migration's `ALTER TABLE jobs` wait, and every worker's `UPDATE jobs` queues behind that. The
function runs with the owner's rights (pg_signal_backend); the scheduler calls it on every reconcile pass with
WATTSWEEP_SESSION_IDLE_LIMIT_S and WATTSWEEP_SESSION_STATEMENT_LIMIT_S.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EndedSession:
    pid: int
    role: str
    state: str
    seconds: float


def end_stale_sessions(session: Session, *, idle_s: float, statement_s: float) -> list[EndedSession]:
    """End the reader and node sessions idle in a transaction longer than `idle_s`, or in one statement longer
    than `statement_s` (0: no statement limit). The scheduler's, the owner's and superusers' are never ended.
    SQLite: nothing to do."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    rows = session.execute(text("SELECT pid, role, state, seconds FROM wattsweep_end_stale_sessions(:idle, :stmt)"),
                           {"idle": float(idle_s), "stmt": float(statement_s)}).all()
    ended = [EndedSession(row.pid, row.role, row.state, float(row.seconds)) for row in rows]
    for one in ended:
        log.warning("ended session %s of %s: %s for %.0f s", one.pid, one.role, one.state, one.seconds)
    return ended
