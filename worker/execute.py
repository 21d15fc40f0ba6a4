"""Run one job: load the model once, then measure every run not done yet.

This is the plain function behind both transports: the in-process local
runner and the thin Celery task call `execute_job(job_id, runtime)`. Each
finished run is committed on its own, so a retried job redoes only what was
lost.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from db.jobs import claim_job, finish_job, heartbeat, host_is_busy, pending_runs, release_job
from db.provenance import record_provenance
from db.results import record_load, record_run
from db.retry import run_in_transaction
from worker.errors import DatasetLoadError, ModelLoadError
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEvent:
    """Progress callbacks for the CLI: kind is `loaded`, `run` or `finished`."""

    kind: str
    job_id: int
    task: str
    model: str
    detail: str = ""


class LeaseLost(RuntimeError):
    """Another worker took this job over; stop without writing more."""


def execute_job(
    job_id: int,
    runtime: WorkerRuntime,
    on_event: Callable[[JobEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str:
    """Claim, run and finish a job; returns its status afterwards, or `skipped`, `lost`, `handed-back`, `host-busy`.

    `should_stop` is asked before each run (a worker told to shut down): the
    job is then handed back whole-runs-only, never with a half-written run.
    """
    from db.settings import get_settings

    settings = get_settings()
    with runtime.sessions.begin() as session:
        if host_is_busy(session, job_id=job_id, worker_id=runtime.worker_id, lease_timeout_s=settings.lease_timeout_s):
            log.info("job %s waits: an exclusive job holds this host, or it is exclusive and the host is busy", job_id)
            return "host-busy"
        job = claim_job(session, job_id=job_id, worker_id=runtime.worker_id, lease_timeout_s=settings.lease_timeout_s)
        if job is None:
            log.info("job %s not claimable (done, unknown, or leased elsewhere): dropped", job_id)
            return "skipped"
        task, model, params = job.task, job.model, dict(job.params)
        multi_purpose = job.model_kind == "multi-purpose"  # a generative model prompted zero-shot
        sweep = job.sweep
        carbon = dict(country_iso_code=sweep.country_iso_code, region=sweep.region,
                      grid_intensity_g_per_kwh=sweep.grid_intensity_g_per_kwh)
        runs = [(r.id, r.dataset, r.n_queries, r.batch_size, r.warmup) for r in pending_runs(session, job_id=job_id)]

    def emit(kind: str, detail: str = "") -> None:
        if on_event:
            on_event(JobEvent(kind, job_id, task, model, detail))

    pipeline = None
    try:
        from worker.datasets import load_queries
        from worker.workloads import get_workload

        workload = get_workload(task, multi_purpose=multi_purpose)
        params = {**workload.default_params, **params}
        meter = runtime.meter_for(**carbon)
        baseline_id = runtime.ensure_baseline(meter)
        try:
            with meter.window("load") as window:
                pipeline = workload.load(model, runtime.device, params)
        except ModelLoadError as error:
            return _finish(runtime, job_id, f"model failed to load: {error}", final=runtime.load_failure_is_final,
                           emit=emit)
        with runtime.sessions.begin() as session:  # the load window, and what was loaded: Hub commit, dtype, size
            record_provenance(session, job_id=job_id, provenance=getattr(pipeline, "wattsweep_provenance", None))
            record_load(session, job_id=job_id, worker_id=runtime.worker_id, reading=window.reading,
                        baseline_id=baseline_id)
        emit("loaded")

        for run_id, dataset, n_queries, batch_size, warmup in runs:
            if should_stop is not None and should_stop():
                return _hand_back(runtime, job_id, emit)
            queries = load_queries(dataset, warmup + n_queries, workload.input_kind)
            if warmup:
                workload.run(pipeline, queries[:warmup], batch_size, params)  # never inside the window
            with meter.window("query") as window:
                units = workload.run(pipeline, queries[warmup:], batch_size, params)
            units = units.resolved()  # token counting, outside the window
            prefill = None
            if params.get("measure_prefill"):  # prefill alone: the same prompts, one new token; decode = query - this
                with meter.window("prefill") as prefill_window:
                    workload.run(pipeline, queries[warmup:], batch_size, {**params, "max_new_tokens": 1})
                prefill = prefill_window.reading

            def store(session, run_id=run_id, reading=window.reading, units=units, prefill=prefill) -> None:
                if not heartbeat(session, job_id=job_id, worker_id=runtime.worker_id):
                    raise LeaseLost(f"job {job_id}: lease lost (taken over by another worker, or cancelled)")
                record_run(session, run_id=run_id, worker_id=runtime.worker_id, reading=reading, units=units,
                           baseline_id=baseline_id, prefill=prefill)

            # The reading is only in memory: if the database is down, wait for it rather than lose the run.
            run_in_transaction(runtime.sessions, store, retry_for_s=settings.db_retry_s)
            emit("run", dataset)
    except DatasetLoadError as error:  # missing or unreadable: the same on the next attempt on this machine
        return _finish(runtime, job_id, f"dataset failed to load: {error}", final=runtime.load_failure_is_final,
                       emit=emit)
    except LeaseLost as error:
        log.warning("%s", error)
        return "lost"
    except Exception as error:  # a failed job must not stop the sweep
        log.exception("job %s failed", job_id)
        return _finish(runtime, job_id, f"{type(error).__name__}: {error}", final=False, emit=emit)
    finally:
        del pipeline
        _free_memory(runtime.device)
    return _finish(runtime, job_id, None, final=False, emit=emit)


def _finish(runtime: WorkerRuntime, job_id: int, error: str | None, *, final: bool, emit) -> str:
    from db.settings import get_settings

    def finish(session) -> str:
        return finish_job(session, job_id=job_id, worker_id=runtime.worker_id, error=error, final=final)

    status = run_in_transaction(runtime.sessions, finish, retry_for_s=get_settings().db_retry_s)
    emit("finished", status if error is None else f"{status}: {error}")
    return status


def _hand_back(runtime: WorkerRuntime, job_id: int, emit) -> str:
    from db.settings import get_settings

    def release(session) -> bool:
        return release_job(session, job_id=job_id, worker_id=runtime.worker_id)

    run_in_transaction(runtime.sessions, release, retry_for_s=get_settings().db_retry_s)
    log.info("job %s handed back before its next run (worker stopping)", job_id)
    emit("finished", "handed-back")
    return "handed-back"


def _free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
