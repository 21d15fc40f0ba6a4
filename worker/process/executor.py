"""Run units: load a job's model once, then measure each claimed unit (a run, or a shard of a long run).

The plain code behind both transports: the in-process local runner
(`run_sweep_locally`, `execute_job`) and the thin Celery task (through
worker.process.celery_worker) drive a worker.process.loop.WorkLoop, which decides what to claim; this
module answers its requests: `Load` (the model, under a `load` window whose
row is written under the unit's lease) and `Execute` (warm-up, then the
unit's queries under a `query` window). Each unit is stored in its own
transaction, so a retried job redoes only what was lost.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import add
from typing import Any

from sqlalchemy import select

from db.queue.leases import Lease, LeaseLost, UnitClaim
from db.retry import run_in_transaction
from worker.engines.process import EngineError  # light: the standard library only
from worker.errors import CannotLoadHere, DatasetLoadError, ModelLoadError, error_text, is_device_lost
from worker.process.loop import Execute, Failed, Load, Loaded, LoopHooks, Measured, Stop, WorkLoop
from worker.process.runtime import WorkerRuntime

log = logging.getLogger(__name__)
PROGRESS_POINTS = 10  # a unit's queries run in this many calls, each one a sign of progress for the watchdog
UNAVAILABLE_SIGNS = ("not in the local cache",)  # our loaders' messages for "pull it first" (worker.models.hub)

__all__ = ["JobEvent", "LeaseLost", "UnitExecutor", "execute_job"]


@dataclass(frozen=True)
class JobEvent:
    """Progress callbacks for the CLI: kind is `loaded`, `run` or `finished`."""

    kind: str
    job_id: int
    task: str
    model: str
    detail: str = ""


@dataclass
class _Model:
    job_id: int
    task: str
    model: str
    workload: Any
    params: dict
    carbon: dict
    pipeline: Any = None
    per_run_baseline: bool = False  # the sweep's `baseline: per-run`: a fresh idle baseline before every unit


@dataclass
class Progress:
    """What the main thread last finished, for the stall watchdog (worker.process.heartbeat)."""

    at: float = field(default_factory=time.monotonic)
    what: str = "starting"
    expected_s: float | None = None  # of the step under way, when known

    def touch(self, what: str, expected_s: float | None = None) -> None:
        self.at, self.what, self.expected_s = time.monotonic(), what, expected_s


class UnitExecutor:
    """Answers a WorkLoop's requests with real models, datasets and meters."""

    def __init__(self, runtime: WorkerRuntime, *, on_event: Callable[[JobEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, progress: Progress | None = None) -> None:
        self.runtime = runtime
        self.on_event = on_event
        self.should_stop = should_stop or (lambda: False)
        self.progress = progress or Progress()
        self.model: _Model | None = None
        self._queries: tuple[str, int, list] | None = None  # the last dataset read: shards of a run reuse it
        self._spare_engine = None  # the last job's engine, kept until the next load (worker.engines.served)

    @property
    def lease(self) -> Lease:
        return Lease(self.runtime.worker_id, self.runtime.token)

    def transact(self, work):
        from db.settings import get_settings

        return run_in_transaction(self.runtime.sessions, work, retry_for_s=get_settings().db_retry_s,
                                  max_wait_s=max(get_settings().heartbeat_interval_s, 1.0))

    def drive(self, flow) -> str:
        """Run a WorkLoop.serve generator to its end, answering each request; returns its outcome."""
        answer = None
        try:
            while True:
                request = flow.send(answer)
                try:
                    if isinstance(request, Load):
                        answer = self.load(request.claim)
                    elif isinstance(request, Execute):
                        answer = Stop() if self.should_stop() else self.execute(request.claim)
                    else:  # pragma: no cover - the protocol has two requests
                        raise TypeError(f"unknown request {request!r}")
                except Exception as error:  # whatever escaped (the database gone past db_retry_s, a bug): the
                    # loop hands the unit on as failed; raising here would leave it leased, and beaten, for ever
                    log.exception("job %s unit %s: %s failed", request.claim.job_id, request.claim.shard_id,
                                  type(request).__name__.lower())
                    if isinstance(request, Load):
                        self.unload()
                        answer = Failed(f"model failed to load: {error_text(error)}",
                                        final=self.runtime.load_failure_is_final, device_lost=is_device_lost(error))
                    else:
                        answer = _unit_failed(error)
        except StopIteration as finished:
            return finished.value
        finally:  # the worker left the job (or stops): its GPUs' power limit goes back (power_limit_w)
            self.runtime.power_limits().restore()

    def event(self, kind: str, job_id: int, detail: str) -> None:
        if self.on_event is None:
            return
        task, model = (self.model.task, self.model.model) if self.model and self.model.job_id == job_id else \
            self._describe(job_id)
        self.on_event(JobEvent(kind, job_id, task, model, detail))

    def _describe(self, job_id: int) -> tuple[str, str]:
        from db.models import Job

        with self.runtime.sessions() as session:
            job = session.get(Job, job_id)
            return (job.task, job.model) if job else ("?", "?")

    # --- Load

    def load(self, claim: UnitClaim):
        from db.models import Job
        from worker.workloads import get_workload

        self.unload(keep_engine=True)

        def read(session) -> dict:
            job = session.get(Job, claim.job_id)
            sweep = job.sweep
            return dict(task=job.task, model=_pinned(job.model, job.model_revision), params=dict(job.params),
                        multi=job.model_kind == "multi-purpose", load_s=job.load_expected_s,
                        per_run_baseline=(sweep.spec or {}).get("baseline") == "per-run",
                        carbon=dict(country_iso_code=sweep.country_iso_code, region=sweep.region,
                                    grid_intensity_g_per_kwh=sweep.grid_intensity_g_per_kwh,
                                    pue=float(((sweep.spec or {}).get("carbon") or {}).get("pue") or 1.0)))

        spec = self.transact(read)  # the unit is leased: a database outage is waited out, not a failure
        try:
            workload = get_workload(spec["task"], multi_purpose=spec["multi"])
        except KeyError as error:
            return Failed(str(error), final=True)
        params = {**workload.default_params, **spec["params"]}
        if params.get("engine"):  # served by an engine (worker.engines): the serving params' defaults too
            from worker.contract.engines import SERVING_DEFAULTS

            params = {**workload.default_params, **SERVING_DEFAULTS, **spec["params"]}
        current = _Model(claim.job_id, spec["task"], spec["model"], workload, params, spec["carbon"],
                         per_run_baseline=spec["per_run_baseline"])
        meter = self.runtime.meter_for(**spec["carbon"])
        baseline_id = self.runtime.ensure_baseline(meter)  # idle: before the cell's power limit
        if failed := self._power_limit(params):  # the load is measured under the cell's limit too
            return failed
        self.progress.touch(f"loading {spec['model']}", spec["load_s"])
        try:
            with meter.window("load") as window:  # an engine's load lasts until it answers its health check
                current.pipeline = self._load_pipeline(workload, spec, params, claim.job_id)
        except EngineError as error:  # the engine's own error line, at once: another attempt would fail alike
            return Failed(f"engine failed to start: {error}", final=True)
        except CannotLoadHere as error:  # too large for this worker's GPUs, or a quantization it cannot run: the
            # job's queue holds only workers like this one, so every attempt would fail alike
            return Failed(f"model failed to load: {error}", final=True)
        except ModelLoadError as error:
            message = f"model failed to load: {error}"
            return Failed(message, unavailable=_unavailable(message), final=self.runtime.load_failure_is_final)
        except Exception as error:  # a failed load must not stop the worker (a dead device context does)
            log.exception("job %s: model failed to load", claim.job_id)
            return Failed(f"model failed to load: {error_text(error)}",
                          final=self.runtime.load_failure_is_final, device_lost=is_device_lost(error))
        self.progress.touch(f"loaded {spec['model']}")
        self.model = current
        from worker.models.loaded_model import float32_numerics

        provenance = {**(getattr(current.pipeline, "wattsweep_provenance", None) or {}), **float32_numerics()}

        reading = self.runtime.power_limits().stamp(window.reading)

        def store(claim: UnitClaim) -> bool:
            return self.transact(lambda s: _store_load(s, self.lease, claim, reading, provenance, baseline_id))

        return Loaded(store=store)

    def _power_limit(self, params: dict) -> Failed | None:
        """The cell's power_limit_w on the worker's GPUs (or the limit found, for a cell without one); a limit that
        cannot be set fails the job at once, one line: out of the GPU's range, no permission, no GPU."""
        from worker.process.power_limits import PowerLimitError

        try:
            self.runtime.power_limits().apply(params.get("power_limit_w"))
        except PowerLimitError as error:
            return Failed(str(error), final=True)
        return None

    def _load_pipeline(self, workload, spec: dict, params: dict, job_id: int):
        """The job's pipeline; for a served job whose model and engine args are the last job's (a load axis such
        as concurrency makes one job per level), the last job's engine if it still runs: no second start."""
        spare, self._spare_engine = self._spare_engine, None
        if spare is not None and params.get("engine"):
            from worker.engines.served import served_key

            if spare.key == served_key(spec["model"], params) and spare.alive():
                log.info("job %s: the engine serving %s already runs (previous job): kept", job_id, spec["model"])
                return spare
        if spare is not None:
            spare.stop()
        from worker.models.placement import placed

        placement = self.runtime.placement()
        if not params.get("engine"):
            with placed(placement):  # the worker's GPUs: a group's model is spread over them
                return workload.load(spec["model"], self.runtime.device, params)
        from worker.engines.served import start

        return start(spec["model"], spec["task"], self.runtime.device, params, job_id=job_id,
                     gpus=placement.gpus if placement.on_cuda else 1)

    def stop_engine(self) -> None:
        """Stop a served job's engine (unloading it); an in-process model stays loaded for the next message."""
        serving = self.model is not None and getattr(self.model.pipeline, "stop", None) is not None
        if serving or self._spare_engine is not None:
            self.unload()

    def unload(self, *, keep_engine: bool = False) -> None:
        """Drop the job's model; a served job's engine is stopped, or with `keep_engine` kept for the next load."""
        spare, self._spare_engine = self._spare_engine, None
        if spare is not None:
            spare.stop()
        if self.model is None:
            return
        pipeline = self.model.pipeline
        if getattr(pipeline, "stop", None) is not None:  # a served model (worker.engines.served.ServedModel)
            if keep_engine and pipeline.alive():
                self._spare_engine = pipeline
            else:
                pipeline.stop()
        del pipeline  # no reference may outlive the collect below, or the model is frozen again with the heap
        self.model = None
        self._queries = None
        # The worker freezes what survives each job (worker.process.celery_worker) while the model is still loaded,
        # and a model in a reference cycle (a sentence-transformers model refers to itself through its model card
        # data) can only be freed by the collector: a frozen one never is. So thaw, collect, and freeze again
        # what is left (the libraries). Outside every window: unload runs before the next `load` window begins.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        if self.runtime.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # --- Execute

    def execute(self, claim: UnitClaim):
        from worker.data.datasets import load_queries

        model = self.model
        if model is None or model.job_id != claim.job_id:  # pragma: no cover - the loop loads before executing
            return Failed(f"unit {claim.shard_id} of job {claim.job_id} reached a worker without its model")
        meter = self.runtime.meter_for(**model.carbon)
        expected = claim.expected_s
        if failed := self._power_limit(model.params):  # back to a loaded job by affinity: its limit again
            return failed
        power = self.runtime.power_limits()
        try:
            self.progress.touch(f"reading {claim.dataset}", expected)
            queries = self._read(claim, load_queries, model.workload.input_kind)
            first = claim.warmup + claim.query_start
            measured = queries[first:first + claim.n_queries]
            self.progress.touch("idle baseline", expected)
            baseline_id = self.runtime.ensure_baseline(meter, for_run=True, per_run=model.per_run_baseline)
            if model.params.get("engine"):  # the engine's load generator, its window and steady part
                from worker.engines.unit import measure

                self.progress.touch("serving", expected)
                reading, units = measure(model.pipeline, meter, measured, queries[:claim.warmup], model.params)
                self.progress.touch("measured")
                return Measured(power.stamp(reading), units, None, baseline_id, None)
            if claim.warmup:
                self.progress.touch("warm-up", expected)
                model.workload.run(model.pipeline, queries[:claim.warmup], claim.batch_size, model.params)
            parts = []
            with meter.window("query") as window:
                for chunk in _chunks(measured, claim.batch_size):
                    parts.append(model.workload.run(model.pipeline, chunk, claim.batch_size, model.params))
                    self.progress.touch("queries", expected and expected / PROGRESS_POINTS)
            units = reduce(add, (part.resolved() for part in parts))  # token counting, outside the window
            prefill = prefill_units = None
            if model.params.get("measure_prefill"):  # prefill alone: same prompts, one new token; decode = query - it
                with meter.window("prefill") as prefill_window:
                    prefill_units = model.workload.run(model.pipeline, measured, claim.batch_size,
                                                       {**model.params, "max_new_tokens": 1})
                prefill, prefill_units = power.stamp(prefill_window.reading), prefill_units.resolved()  # own units
        except DatasetLoadError as error:
            message = f"dataset failed to load: {error}"
            return Failed(message, unavailable=_unavailable(message))
        except Exception as error:  # a failed unit must not stop the worker (a dead device context does)
            log.exception("job %s unit %s failed", claim.job_id, claim.shard_id)
            return _unit_failed(error)
        self.progress.touch("measured")
        return Measured(power.stamp(window.reading), units, prefill, baseline_id, prefill_units)

    def _read(self, claim: UnitClaim, load_queries, input_kind: str) -> list:
        """The run's queries (warm-up first), read once for all its shards and repetitions."""
        n = claim.warmup + claim.run_queries
        if self._queries and self._queries[0] == claim.dataset and self._queries[1] == n:
            return self._queries[2]
        queries = load_queries(claim.dataset, n, input_kind)
        self._queries = (claim.dataset, n, queries)
        return queries


def _unit_failed(error: Exception) -> Failed:
    """A unit's failure, its message (never SQL or its parameters) saying when the device's context is dead."""
    if is_device_lost(error):
        return Failed(f"device lost (the process exits for a fresh CUDA context): {error_text(error)}",
                      device_lost=True)
    return Failed(error_text(error))


def _chunks(queries: list, batch_size: int) -> list[list]:
    """About PROGRESS_POINTS calls over the queries, each a whole number of batches."""
    batch = max(batch_size, 1)
    batches = -(-len(queries) // batch)
    per = max(1, -(-batches // PROGRESS_POINTS)) * batch
    return [queries[i:i + per] for i in range(0, len(queries), per)] or [queries]


def _unavailable(message: str) -> bool:
    return any(sign in message for sign in UNAVAILABLE_SIGNS)


def _pinned(model: str, revision: str | None) -> str:
    """Once a job recorded the commit it measured, every later load of a `hub:` model loads that commit."""
    if revision and model.startswith("hub:"):
        return f"{model.split('@', 1)[0]}@{revision}"
    return model


def _store_load(session, lease: Lease, claim: UnitClaim, reading, provenance, baseline_id) -> bool:
    """The load window and what was loaded, only while this process holds the unit's lease.

    A job measures one commit: if another worker recorded a different one meanwhile (two first loads of a
    `hub:` reference without `@revision` racing a push), this load is not used: the unit is handed back and
    the next load reads the recorded commit.
    """
    from db.models import Job
    from db.queue.leases import holds, release
    from db.queue.staffing import leave
    from db.results.provenance import record_provenance
    from db.results.store import record_load

    if not holds(session, lease=lease, shard_id=claim.shard_id):
        return False
    recorded = session.scalar(select(Job.model_revision).where(Job.id == claim.job_id).with_for_update())
    loaded = (provenance or {}).get("revision")
    if recorded and loaded and recorded != loaded:
        log.warning("job %s measures commit %s, this worker loaded %s: handing the unit back to load %s",
                    claim.job_id, recorded, loaded, recorded)
        release(session, lease=lease, shard_id=claim.shard_id)
        leave(session, lease=lease, job_id=claim.job_id, handed_back=True)
        return False
    record_provenance(session, job_id=claim.job_id, provenance=provenance)
    if (provenance or {}).get("engine"):  # a served job: its engine, version, command line and log
        from db.results.serving import record_engine

        record_engine(session, job_id=claim.job_id, provenance=provenance)
    record_load(session, job_id=claim.job_id, worker_id=lease.worker_id, reading=reading, baseline_id=baseline_id)
    return True


# --- local mode and tests: a job, or a whole sweep, in this process


def make_loop(runtime: WorkerRuntime, executor: UnitExecutor, *, mode: str | None, sweep_id: int | None = None,
              send: Callable[[int], None] | None = None, queue_length: Callable[[], int] | None = None,
              hold: Callable[[int | None], None] | None = None, may_take_over: Callable[[], bool] | None = None,
              max_consecutive_failures: int | None = None) -> WorkLoop:
    """The loop over this executor's transactions and events; the broker's and heartbeat's hooks where given."""
    from db.settings import get_settings

    optional = dict(send=send, queue_length=queue_length, hold=hold, may_take_over=may_take_over)
    hooks = LoopHooks(transact=executor.transact, on_event=executor.event,  # a hook not given: the loop's default
                      **{name: hook for name, hook in optional.items() if hook is not None})
    return WorkLoop(lease=executor.lease, hardware_class=runtime.hardware_class,
                    lease_timeout_s=get_settings().lease_timeout_s, hooks=hooks, mode=mode, sweep_id=sweep_id,
                    max_consecutive_failures=max_consecutive_failures, gpus=runtime.gpus)


def execute_job(
    job_id: int,
    runtime: WorkerRuntime,
    on_event: Callable[[JobEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str:
    """Run every unit of one job left to run here; returns its status afterwards, or `skipped`, `handed-back`,
    `host-busy`."""
    executor = UnitExecutor(runtime, on_event=on_event, should_stop=should_stop)
    loop = make_loop(runtime, executor, mode=None)
    try:
        return executor.drive(loop.serve(job_id, joins=1, only_job_id=job_id, should_stop=executor.should_stop))
    finally:
        executor.unload()
