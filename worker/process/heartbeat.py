"""A background thread that keeps the worker's row and its unit's lease fresh, and watches for stalls.

Units can last longer than the lease timeout, so without this thread a
healthy worker's lease would look stale and another worker would take the
unit over. The thread beats every `interval_s` whether or not a unit is held,
so `wattsweep workers` also shows idle workers as alive. Stamps are the
database server's clock (db.queue.leases.beat).

- A database error is logged and the beat retried every second, so that a
  worker beats as soon as the database is back (its held unit stays its own).
  While the connection is down, and for one lease period after it comes back,
  this worker takes over no one else's lease (`may_take_over`): the others
  may be reconnecting too.
- The watchdog: the main thread records progress (worker.process.executor.Progress).
  With no progress for the stall timeout, the thread stops beating (the lease
  goes stale and the unit is taken over), marks the unit stalled, logs why
  and ends the process with exit status 3 so that its supervisor (compose,
  Slurm, systemd) restarts it. A hung CUDA call or NFS read cannot be
  interrupted from Python; a restart can.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from db.queue.leases import Lease, beat

log = logging.getLogger(__name__)
STALL_EXIT_CODE = 3
DEFAULT_STALL_TIMEOUT_S = 1800.0  # no query finished for half an hour: hung, whatever the unit
STALL_FACTOR = 4.0  # or this many times the step's expected duration, if longer


def stall_timeout_s(configured: float | None, expected_s: float | None) -> float:
    """The stall timeout: the setting if given, else generous: max(30 min, 4 x the step's expected duration)."""
    if configured:
        return configured
    return max(DEFAULT_STALL_TIMEOUT_S, STALL_FACTOR * (expected_s or 0.0))


class HeartbeatThread(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], lease: Lease | str, interval_s: float, *,
                 lease_timeout_s: float = 120.0, progress=None, stall_timeout_s: float | None = None,
                 on_stall: Callable[[str], None] | None = None) -> None:
        lease = lease if isinstance(lease, Lease) else Lease(lease, "")
        super().__init__(name=f"heartbeat-{lease.worker_id}", daemon=True)  # daemon: SIGKILL semantics stay simple
        self._sessions = sessions
        self._lease = lease
        self._interval_s = interval_s
        self._lease_timeout_s = lease_timeout_s
        self._progress = progress
        self._stall_timeout_s = stall_timeout_s
        self._on_stall = on_stall or _exit_stalled
        self._shard_id: int | None = None
        self._stop_event = threading.Event()
        self._down_since: float | None = None
        self._up_since: float | None = None  # when the database came back after an outage (monotonic)
        self.evicted = False  # another process took over this worker id

    @contextmanager
    def holding(self, shard_id: int) -> Iterator[None]:
        """Beat for `shard_id` while the block runs."""
        self.hold(shard_id)
        try:
            yield
        finally:
            self.hold(None)

    def hold(self, shard_id: int | None) -> None:
        """Beat for `shard_id` from now on (None: for no unit). Holding a unit starts a step: a worker that
        sat idle for an hour has made no progress for an hour, and its watchdog must not count that time."""
        if shard_id is not None and self._progress is not None:
            self._progress.touch(f"starting unit {shard_id}")  # before the unit is visible to the thread
        self._shard_id = shard_id  # the claim itself stamped the lease: the next beat is due in interval_s

    def may_take_over(self) -> bool:
        """False while the database is unreachable, and for one lease period after it is reachable again."""
        if self._down_since is not None:
            return False
        return self._up_since is None or time.monotonic() - self._up_since >= self._lease_timeout_s

    def stalled_for(self) -> tuple[float, float, str] | None:
        """(seconds without progress, the timeout, what it was doing) once stalled, else None."""
        progress = self._progress
        if progress is None or self._shard_id is None:
            return None
        idle_s = time.monotonic() - progress.at
        timeout = stall_timeout_s(self._stall_timeout_s, progress.expected_s)
        return (idle_s, timeout, progress.what) if idle_s > timeout else None

    def beat(self) -> bool:
        shard_id = self._shard_id
        stalled = self.stalled_for()
        if stalled is not None:
            self._stall(shard_id, *stalled)
            return False
        age = time.monotonic() - self._progress.at if self._progress is not None else 0.0
        try:
            with self._sessions.begin() as session:
                mine, _ = beat(session, lease=self._lease, shard_id=shard_id, progress_age_s=age)
        except Exception as error:  # the database may be down: try again in a second, not in a beat
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("heartbeat failed (%s); retrying every second", _one_line(error))
            return False
        if self._down_since is not None:
            log.warning("database reachable again after %.0f s; no takeovers for %.0f s",
                        time.monotonic() - self._down_since, self._lease_timeout_s)
            self._down_since, self._up_since = None, time.monotonic()
        if not mine and not self.evicted and self._lease.token:
            self.evicted = True
            log.error("another process registered as %s: this one no longer owns the worker id",
                      self._lease.worker_id)
        return True

    def _stall(self, shard_id: int | None, idle_s: float, timeout_s: float, what: str) -> None:
        reason = (f"no progress for {idle_s:.0f} s (stall timeout {timeout_s:.0f} s) while {what}: "
                  "the heartbeat stops so that unit goes to another worker; exiting for a restart")
        log.error("%s", reason)
        try:
            from db.queue.leases import mark_stalled

            with self._sessions.begin() as session:
                mark_stalled(session, lease=self._lease, shard_id=shard_id, reason=reason)
        except Exception as error:  # best effort: the lease expires anyway
            log.warning("could not record the stall: %s", _one_line(error))
        self._stop_event.set()
        self._on_stall(reason)

    def run(self) -> None:
        wait_s = self._interval_s
        while not self._stop_event.wait(wait_s):
            ok = self.beat()
            wait_s = self._interval_s if ok else min(1.0, self._interval_s)

    def stop(self) -> None:
        self._stop_event.set()


def _exit_stalled(reason: str) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    print(f"wattsweep worker: {reason}", file=sys.stderr, flush=True)
    os._exit(STALL_EXIT_CODE)  # the main thread is stuck in a call Python cannot interrupt


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]
