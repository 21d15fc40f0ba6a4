"""`wattsweep worker --gpus ... --split-when-drained`, the group's side: notice that the group's work is done, and exit.

A thread of the group worker asks, every heartbeat interval while no job runs, whether its queue is empty and
db.queue.staffing.group_drained says that nothing is left for its size while one-GPU jobs wait. Then the worker
declines any message that still arrives (sent again, for the next group worker), stops as on SIGTERM (a warm
shutdown: it unregisters, so that its GPUs are free at once) and exits with EXIT_DRAINED, on which the supervisor
(worker.process.supervisor) starts one one-GPU worker per GPU of the group.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_DRAINED = 4  # the group's work is done: start its GPUs as one-GPU workers (worker.process.supervisor)


class DrainWatch(threading.Thread):
    """Asks `drained()` every `every_s` seconds while `idle` can be taken (no job runs); once it says yes, calls
    `on_drained()` with `idle` still held (so that no job starts in between), then stops the process."""

    def __init__(self, *, idle: threading.Lock, drained: Callable[[], bool], on_drained: Callable[[], None],
                 every_s: float) -> None:
        super().__init__(name="drain-watch", daemon=True)
        self.idle, self.drained, self.on_drained, self.every_s = idle, drained, on_drained, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            if self.check():
                os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown, in the main thread
                return

    def check(self) -> bool:
        if not self.idle.acquire(blocking=False):  # a job runs: it is not drained, whatever the database says
            return False
        try:
            try:
                if not self.drained():
                    return False
            except Exception as error:  # the database or the broker is away: ask again later
                log.warning("could not check whether this group's work is done: %s", " ".join(str(error).split()))
                return False
            self.on_drained()
            return True
        finally:
            self.idle.release()

    def stop(self) -> None:
        self.stopped.set()
