"""`wattsweep worker`: pin the process, check the services, register, and consume one queue.

Pool: solo. The worker is one process that owns one GPU (or one group), so there is nothing
to fork: the process that sets CUDA_VISIBLE_DEVICES and reads NVML is the one
that later creates the CUDA context (no CUDA call in a parent that forks), the
model cache and the CodeCarbon tracker live across jobs, and SIGTERM/SIGKILL
reach exactly the process that holds the job. The price, accepted: while a
job runs the process does not answer Celery remote control (Flower shows it
busy); liveness comes from our own heartbeat thread and the workers table.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from dataclasses import dataclass

from worker.process.pinning import (
    Pinning,
    PinningError,
    apply_pinning,
    check_torch_device,
    plan_pinning,
    read_gpu,
    torch_device_uuid,
)

log = logging.getLogger(__name__)


HOST_BUSY_WAIT_S = 5.0
EXIT_DEVICE_LOST = 3  # the accelerator's context is dead: restart the process (compose, Slurm) for a fresh one


class WorkerStartError(RuntimeError):
    """The worker cannot start; the message is one line for the user (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # driver errors (psycopg) span several lines


@dataclass(frozen=True)
class WorkerOptions:
    queue: str
    gpu: int | None = None
    gpus: str | None = None  # a group: "0,1,2,3"
    device: str | None = None
    name: str | None = None
    loglevel: str = "INFO"
    exit_when_drained: bool = False  # a group: exit EXIT_DRAINED once its work is done (worker.process.drain)


class WorkerContext:
    """What the thin task calls: the work loop, the heartbeat, the stop flag, and sending messages."""

    def __init__(self, runtime, heartbeat, app, retry_for_s: float, *, queue_length=None,
                 lease_timeout_s: float = 120.0, max_consecutive_failures: int | None = None, progress=None) -> None:
        from worker.process.executor import UnitExecutor, make_loop

        self.runtime = runtime
        self.queue_length = queue_length
        self.heartbeat = heartbeat
        self.app = app
        self.retry_for_s = retry_for_s
        self.stopping = threading.Event()  # set on SIGTERM (warm shutdown): hand back at the next unit boundary
        self.idle = threading.Lock()  # held while a message is handled: the drain check runs only between jobs
        self.drained = False  # --split-when-drained: this group's work is done; the process is stopping
        self.consumer = None  # Celery's consumer, once it started (to stop consuming after a failure streak)
        self.executor = UnitExecutor(runtime, should_stop=self.stopping.is_set, progress=progress)
        self.loop = make_loop(runtime, self.executor, mode="distributed", send=self.send_again,
                              queue_length=queue_length, hold=heartbeat.hold if heartbeat else None,
                              may_take_over=heartbeat.may_take_over if heartbeat else None,
                              max_consecutive_failures=max_consecutive_failures or None)

    def job_exists(self, job_id: int) -> bool:
        from db.queue.jobs import job_exists
        from db.retry import run_in_transaction

        return run_in_transaction(self.runtime.sessions, lambda s: job_exists(s, job_id=job_id),
                                  retry_for_s=self.retry_for_s)

    def run(self, job_id: int) -> str:
        """One message: join at most one job (the database chooses; `job_id` breaks ties) and work its units."""
        with self.idle:
            return self._run(job_id)

    def _run(self, job_id: int) -> str:
        if self.loop.stopped_reason is not None or self.drained:  # a message that arrived before consuming stopped
            self.send_again(job_id)  # (drained: for the next group worker; it stays queued in the database too)
            return "declined"
        status = self.executor.drive(self.loop.serve(job_id, joins=1, should_stop=self.stopping.is_set))
        if self.queue_length is None or self.queue_length() == 0:  # idle now: no engine holds the GPU meanwhile
            self.executor.stop_engine()  # (a queued job may still reuse it: its load decides)
        # What survived the last collection lives on: keep it out of the next one (a million library objects
        # would cost ~0.1 s per model switch).
        gc.freeze()
        if status == "host-busy":  # exclusivity: an exclusive job holds this host; let it finish first
            self.stopping.wait(HOST_BUSY_WAIT_S)
            self.send_again(job_id)
        if self.loop.stopped_reason is not None:
            self.stop_consuming(self.loop.stopped_reason)
        log.info("job %s: %s", job_id, status)
        exit_if_device_lost(self.loop)
        return status

    def is_drained(self) -> bool:
        """Its queue is empty and the database has nothing left for its size while one-GPU jobs wait."""
        from db.queue.staffing import group_drained
        from db.retry import run_in_transaction

        if self.queue_length is None or self.queue_length() != 0:
            return False
        runtime = self.runtime
        return run_in_transaction(runtime.sessions, lambda s: group_drained(
            s, lease=runtime_lease(runtime), hardware_class=runtime.hardware_class, gpus=runtime.gpus,
            lease_timeout_s=self.loop.lease_timeout_s), retry_for_s=self.retry_for_s)

    def mark_drained(self) -> None:
        self.drained = True
        log.info("worker %s: nothing left for %d GPUs while one-GPU jobs wait; the group stops, to go on as one-GPU "
                 "workers", self.runtime.worker_id, self.runtime.gpus)

    def send_again(self, job_id: int) -> None:
        """Send a job's id (a hand-back, a recruit). A broker that is down costs only the message: the job is in
        the database, and reconcile sends it; the unit this worker holds must not be dropped for it."""
        from db.queue.reconcile import Dispatch, mark_dispatched
        from db.retry import run_in_transaction
        from worker.contract.celery_app import SendFailed, send_job_ids

        try:
            send_job_ids(self.app, [Dispatch(job_id, self.runtime.hardware_class, gpus=self.runtime.gpus)])
        except SendFailed as error:
            log.warning("could not send job %s to the broker (%s); reconcile will", job_id, error)
            return
        run_in_transaction(self.runtime.sessions, lambda s: mark_dispatched(s, job_ids=[job_id]),
                           retry_for_s=self.retry_for_s)

    def stop_consuming(self, reason: str) -> None:
        """A failure streak: this node is probably broken (driver, cache, disk). Stay visible, take no more work."""
        from db.queue.live import set_stopped_reason
        from db.retry import run_in_transaction

        log.error("worker %s stops taking work: %s", self.runtime.worker_id, reason)
        run_in_transaction(self.runtime.sessions, lambda s: set_stopped_reason(
            s, worker_id=self.runtime.worker_id, token=self.runtime.token, reason=reason),
            retry_for_s=self.retry_for_s)
        if self.consumer is not None:
            self.consumer.cancel_task_queue(self.runtime.queue)


def exit_if_device_lost(loop) -> None:
    """A dead CUDA context fails every later unit, and the process would keep its GPU while taking no work: end
    the worker instead, exit status EXIT_DEVICE_LOST, so that compose or Slurm restarts it with a fresh context.
    The unit that met the error is already failed with the reason; the job's message goes back to the broker
    unacknowledged (late acks), and the database decides what is left to run."""
    if not loop.device_lost:
        return
    from celery.exceptions import WorkerShutdown

    log.error("%s: the worker exits (status %d) to get a fresh device context", loop.stopped_reason,
              EXIT_DEVICE_LOST)
    raise WorkerShutdown(EXIT_DEVICE_LOST)  # SystemExit: through the solo pool to Worker.start, which stops


def pin(options: WorkerOptions, node_name: str | None = None) -> Pinning:
    """Step one, before anything imports torch."""
    from worker.contract.celery_app import queue_name_problem
    from worker.process.inventory import display_name

    if problem := queue_name_problem(options.queue):
        raise WorkerStartError(f"--queue: {problem}")
    try:
        pinning = plan_pinning(gpu=options.gpu, gpus=options.gpus, device=options.device,
                               hostname=display_name(node_name),
                               pid=os.getpid(), name=options.name,
                               inherited_visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
        apply_pinning(pinning)
    except PinningError as error:
        raise WorkerStartError(str(error)) from None
    return pinning


def check_meter(pinning: Pinning) -> None:
    """Build and close the meter this worker's jobs will use, once, at start: an NVML, driver or CodeCarbon problem
    is one line and exit status 2 here, instead of three failed jobs later (the meter was first made by the first
    job). About a second: CodeCarbon's start-up. The carbon setting does not matter to the hardware."""
    from worker.measure.meter import Meter, MeterError

    try:
        Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=list(pinning.gpu_ids or []), mig_uuid=pinning.mig_uuid).close()
    except MeterError as error:
        raise WorkerStartError(f"the energy meter cannot start on {pinning.device}: {error}") from None
    except Exception as error:  # CodeCarbon or NVML raising past the meter: still one line
        raise WorkerStartError(f"the energy meter cannot start on {pinning.device}: {type(error).__name__}: "
                               f"{error}") from None


def serve(options: WorkerOptions) -> int:
    """Run the worker until it is told to stop; returns the exit code."""
    from db.settings import get_settings
    from worker.process.inventory import HostIdentityError, display_name, host_identity

    settings = get_settings()
    pinning = pin(options, settings.node_name)
    try:
        host_id = host_identity(settings.host_id)
    except HostIdentityError as error:
        raise WorkerStartError(str(error)) from None
    try:
        gpus = [read_gpu(index) for index in pinning.gpu_indexes]
    except PinningError as error:
        raise WorkerStartError(str(error)) from None
    check_meter(pinning)  # NVML, the driver, CodeCarbon: now, not as the first jobs' failures
    sessions = _check_database(settings.database_url)
    _check_broker(settings.broker_url)

    from worker.process.runtime import WorkerRuntime

    # The simulated GPU node (tests): torch has no CUDA there, so the model runs on the CPU; NVML is metered.
    torch_device = "cpu" if settings.simulated_gpu and pinning.gpu_index is not None else pinning.device
    runtime = WorkerRuntime(worker_id=pinning.worker_id, device=torch_device, hardware_class=options.queue,
                            sessions=sessions, gpu_ids=pinning.gpu_ids, mig_uuid=pinning.mig_uuid,
                            simulated_gpu=settings.simulated_gpu and pinning.gpu_index is not None,
                            load_failure_is_final=False, host_id=host_id, hostname=display_name(settings.node_name))
    _register(runtime, gpus, settings.heartbeat_interval_s, settings.lease_timeout_s)
    _configure_logging(options.loglevel)  # after the checks: a start-up error stays one line
    _restore_power_limits(runtime)
    _preload_libraries()
    if gpus:  # torch's cuda:i must be the GPU that NVML meters as gpu_ids[i] (the simulated node too: issue 18)
        try:
            for ordinal, gpu in enumerate(gpus):
                check_torch_device(pinning, gpu["uuid"], torch_device_uuid(ordinal, simulated=settings.simulated_gpu),
                                   ordinal)
        except PinningError as error:
            _unregister(runtime)
            raise WorkerStartError(str(error)) from None

    from celery import bootsteps, signals

    from worker.contract.broker import redis_client
    from worker.contract.celery_app import make_app
    from worker.process import tasks
    from worker.process.executor import Progress
    from worker.process.heartbeat import HeartbeatThread

    if gpus:
        from db.queue.live import set_worker_device

        with sessions.begin() as session:
            set_worker_device(session, worker_id=pinning.worker_id, device=pinning.physical_device)
    progress = Progress()
    heartbeat = HeartbeatThread(sessions, runtime_lease(runtime), settings.heartbeat_interval_s,
                                lease_timeout_s=settings.lease_timeout_s, progress=progress,
                                stall_timeout_s=settings.stall_timeout_s)
    heartbeat.start()
    app = make_app(settings.broker_url)
    broker = redis_client(settings.broker_url)
    context = WorkerContext(runtime, heartbeat, app, settings.db_retry_s,
                            queue_length=lambda: queue_length_or_busy(broker, runtime.queue),
                            lease_timeout_s=settings.lease_timeout_s,
                            max_consecutive_failures=settings.max_consecutive_failures, progress=progress)
    tasks.install(app, context)
    watch = None
    if options.exit_when_drained:
        from worker.process.drain import DrainWatch

        watch = DrainWatch(idle=context.idle, drained=context.is_drained, on_drained=context.mark_drained,
                           every_s=settings.heartbeat_interval_s)

    class RememberConsumer(bootsteps.StartStopStep):
        requires = {"celery.worker.consumer.tasks:Tasks"}

        def start(self, consumer) -> None:
            context.consumer = consumer

    app.steps["consumer"].add(RememberConsumer)

    def on_shutdown(**_) -> None:
        context.stopping.set()

    def on_ready(**_) -> None:  # scale-out: a worker joining mid-sweep asks for work a running job can share
        try:
            context.loop.recruit_now()
        except Exception as error:  # the first message will do instead
            log.warning("could not look for work to join: %s", error)

    signals.worker_shutting_down.connect(on_shutdown, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    if watch is not None:
        signals.worker_ready.connect(lambda **_: watch.start(), weak=False)
    log.info("worker %s on %s (queue %s)%s", pinning.worker_id, pinning.device, runtime.queue,
             "".join(f", GPU {gpu['name']} #{gpu['index']}" for gpu in gpus))
    # A group of N consumes its class's queue for N GPUs (h100-x4): only jobs needing N GPUs come to it.
    worker = app.Worker(hostname=pinning.worker_id, queues=[runtime.queue], pool="solo", concurrency=1,
                        loglevel=options.loglevel, without_mingle=True, without_gossip=True)
    try:
        worker.start()
    finally:
        if watch is not None:
            watch.stop()
        try:  # a served job's engine stops with its worker, not seconds later by its guard
            context.executor.unload()
        except Exception as error:  # the guard still stops it; unregistering must not be skipped
            log.warning("could not unload at shutdown: %s", error)
        heartbeat.stop()
        _unregister(runtime)
        runtime.close()
    if context.drained:
        from worker.process.drain import EXIT_DRAINED

        return EXIT_DRAINED
    return worker.exitcode or 0


def queue_length_or_busy(broker, queue: str) -> int:
    """The queue's length, for recruiting; 1 (not empty: recruit nobody now) while the broker is unreachable,
    so that a Redis restart never aborts the unit a worker is about to run."""
    import redis

    from worker.contract.broker import queue_lengths

    try:
        return queue_lengths(broker, [queue])[queue]  # its priority lists too: kombu's layout is read in one place
    except redis.RedisError as error:
        log.warning("broker unreachable (%s): no recruiting until it is back", " ".join(str(error).split()))
        return 1


def runtime_lease(runtime):
    from db.queue.leases import Lease

    return Lease(runtime.worker_id, runtime.token)


def _register(runtime, gpus, heartbeat_interval_s: float, lease_timeout_s: float) -> None:
    """Atomically: this process owns the worker id and its GPUs, unless another live one holds the id or one of
    the GPUs on this host (then refuse to start, naming it). A GPU's holder counts as live while its heartbeat
    would keep a lease live: a late beat on a loaded node must not let a second worker onto its GPUs."""
    from db.queue.live import heartbeat_age_s
    from worker.process.runtime import GpusHeld

    window_s = 2 * heartbeat_interval_s
    try:
        if runtime.register(gpus=gpus, twin_window_s=window_s, gpu_window_s=lease_timeout_s):
            return
    except GpusHeld as error:
        raise WorkerStartError(str(error)) from None
    with runtime.sessions() as session:
        age_s = heartbeat_age_s(session, worker_id=runtime.worker_id) or 0.0
    raise WorkerStartError(f"worker {runtime.worker_id} is already running (heartbeat {age_s:.0f} s ago): one worker "
                           f"per device; if it has just stopped, start again in {window_s:.0f} s")


def _restore_power_limits(runtime) -> None:
    """A power limit a dead worker set on this worker's GPUs and never put back (SIGKILL, a lost node): back now,
    before the first job measures on a GPU capped by someone else's cell."""
    from worker.process.power_limits import PowerLimitError

    try:
        for line in runtime.power_limits().restore_left_over():
            log.warning("%s", line)
    except PowerLimitError as error:  # no permission now, say: this worker's own cells would fail alike
        log.warning("could not put back a power limit left by an earlier worker: %s", error)


def _unregister(runtime) -> None:
    from db.queue.live import unregister_worker

    try:
        with runtime.sessions.begin() as session:
            unregister_worker(session, worker_id=runtime.worker_id, token=runtime.token)
    except Exception as error:  # the database may be down at exit; the id frees itself after two beats
        log.warning("could not free worker id %s: %s", runtime.worker_id, error)


def _preload_libraries() -> None:
    """Import the model libraries now, after pinning: otherwise the first job's `load` window on every
    worker would also measure seconds of Python imports. Importing torch creates no CUDA context."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("torch", "transformers.pipelines"):  # the pipelines pull in the Auto classes too
            importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the libraries' objects live as long as the process: out of every later full collection


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="[%(asctime)s %(levelname)s %(name)s] %(message)s")
    for noisy in ("urllib3", "filelock", "httpx"):  # CodeCarbon's warnings go into each window's flags
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _check_database(url: str):
    from db.migrate import is_up_to_date
    from db.session import DatabaseUnavailable, session_factory

    try:
        if not is_up_to_date(url):
            raise WorkerStartError("the database has no wattsweep schema yet: run `wattsweep db upgrade`")
    except DatabaseUnavailable as error:
        raise WorkerStartError(str(error)) from None
    return session_factory(url)


def _check_broker(url: str) -> None:
    from worker.contract.broker import BrokerUnavailable, check_broker

    try:
        check_broker(url)
    except BrokerUnavailable as error:
        raise WorkerStartError(str(error)) from None
