"""A background thread that keeps the worker's row and its job's lease fresh.

Runs can last longer than the lease timeout (a big model on 1,000 queries), and
`execute_job` only heart-beats between runs, so without this thread a healthy
worker's lease would look stale and another worker would take the job over.
The thread beats every `interval_s` whether or not a job is held, so
`wattsweep workers` also shows idle workers as alive. A database error is
logged and retried at the next beat; it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from db.jobs import heartbeat, touch_worker

log = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], worker_id: str, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)  # daemon: SIGKILL semantics stay simple
        self._sessions = sessions
        self._worker_id = worker_id
        self._interval_s = interval_s
        self._job_id: int | None = None
        self._stop_event = threading.Event()

    @contextmanager
    def holding(self, job_id: int) -> Iterator[None]:
        """Beat for `job_id` while the block runs (a no-op until the job is actually claimed)."""
        self._job_id = job_id
        try:
            yield
        finally:
            self._job_id = None

    def beat(self) -> None:
        job_id = self._job_id
        try:
            with self._sessions.begin() as session:
                if job_id is None:
                    touch_worker(session, worker_id=self._worker_id)
                elif not heartbeat(session, job_id=job_id, worker_id=self._worker_id):
                    touch_worker(session, worker_id=self._worker_id)  # not (or no longer) ours: stay visible
        except Exception as error:  # the database may be briefly down: try again next beat
            log.warning("heartbeat failed: %s", error)

    def run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            self.beat()

    def stop(self) -> None:
        self._stop_event.set()
