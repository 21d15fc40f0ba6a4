"""The one Celery task: a job id in, `execute_job` out. Everything else lives in plain functions.

A message whose body is not JSON never reaches this code (the app accepts JSON
only; Celery logs and drops it). A JSON body that is not one integer, or an
id the database does not know, is rejected here: logged, never executed.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from celery import Celery
from celery.exceptions import Reject

from worker.contract.celery_app import RUN_JOB

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    """What the task needs from its worker process (see worker.process.celery_worker.WorkerContext)."""

    def job_exists(self, job_id: int) -> bool: ...

    def run(self, job_id: int) -> str: ...


_runner: JobRunner | None = None


def install(app: Celery, runner: JobRunner) -> None:
    """Register the task on `app`, bound to this process's runner."""
    global _runner
    _runner = runner
    app.task(name=RUN_JOB, ignore_result=True)(run_job)


def run_job(job_id: Any) -> str:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        log.error("rejected message: job id %r is not an integer; not executed", job_id)
        raise Reject(f"job id {job_id!r} is not an integer", requeue=False)
    if not _runner.job_exists(job_id):
        log.error("rejected message: no job %s in the database; not executed", job_id)
        raise Reject(f"unknown job {job_id}", requeue=False)
    return _runner.run(job_id)
