"""Local mode: the same units, claimed and run one after another in this process (no broker)."""

from __future__ import annotations

import time
from collections.abc import Callable

from worker.process.executor import JobEvent, UnitExecutor, make_loop
from worker.process.runtime import WorkerRuntime

HOST_BUSY_WAIT_S = 2.0


def run_sweep_locally(
    sweep_id: int, runtime: WorkerRuntime, on_event: Callable[[JobEvent], None] | None = None
) -> None:
    """Run every unit of the sweep until each is done or out of attempts (the database chooses the order)."""
    executor = UnitExecutor(runtime, on_event=on_event)
    loop = make_loop(runtime, executor, mode=None, sweep_id=sweep_id)
    try:
        while executor.drive(loop.serve(None, joins=1_000_000_000)) == "host-busy":
            time.sleep(HOST_BUSY_WAIT_S)  # another process runs an exclusive job on this host: wait our turn
    finally:
        executor.unload()
