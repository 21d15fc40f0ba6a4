"""Local mode: the same jobs, run one after another in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from db.models import Job
from worker.execute import JobEvent, execute_job
from worker.runtime import WorkerRuntime

HOST_BUSY_WAIT_S = 2.0


def run_sweep_locally(
    sweep_id: int, runtime: WorkerRuntime, on_event: Callable[[JobEvent], None] | None = None
) -> None:
    """Run every queued job of the sweep until it is done or out of attempts."""
    with runtime.sessions() as session:
        job_ids = session.scalars(select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.id)).all()
    for job_id in job_ids:
        while (status := execute_job(job_id, runtime, on_event)) in ("queued", "host-busy"):
            if status == "host-busy":  # another process runs an exclusive job on this host: wait our turn
                time.sleep(HOST_BUSY_WAIT_S)
