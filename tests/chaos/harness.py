"""A chaos run: a sweep on real `wattsweep worker` processes while a seeded schedule breaks things.

Used by bench/chaos.py (at least 200 units) and tests/chaos (a short form). Everything runs against a
private Postgres and Redis (tests/services.py), never the machine's shared ones, because the faults include
restarting both. The harness plays the parts a lab's deployment would:

- a supervisor (compose `restart:`, systemd, Slurm) that starts `workers` real worker processes and starts
  again, under the same name, any that exit (killed, or refused while its dead twin's beat is still fresh);
- the scheduler's `wattsweep reconcile --watch`, kept running the same way;
- the faults, fired when the sweep has stored a seeded random fraction of its units (so they land mid-run on
  a fast machine and a slow one alike): SIGKILL of a worker, SIGSTOP then SIGCONT of one (sometimes for
  longer than a lease), a Redis restart (its queues are gone: no persistence), a Postgres restart (a fast
  shutdown, down for a seeded few seconds, then start: `pg_ctl restart -m fast`, spread out), and a running
  worker's clock stepped 10 to 30 s off (through a file its clock reads: libfaketime where it leaves
  Python's timed waits working, else tests/distributed/fakeclock).

A fault aimed at a worker hits the planned slot if that worker is up and ready, else the next one that is
(one holding a unit first): a worker still starting again after an earlier kill has nothing to lose.

At the end the database is checked: every planned unit stored exactly once, no job left `running` or
`queued`, every job `done` or `failed` with a reason. Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

FAKE_CLOCK = Path(__file__).resolve().parents[1] / "distributed" / "fakeclock"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
KINDS = ("kill", "stop", "redis", "postgres", "clock")
SETTINGS = {
    "WATTSWEEP_LEASE_TIMEOUT_S": "6",
    "WATTSWEEP_HEARTBEAT_INTERVAL_S": "0.5",
    "WATTSWEEP_DISPATCH_GRACE_S": "1",
    "WATTSWEEP_RECONCILE_INTERVAL_S": "1",
    # A unit whose worker is killed three times fails, correctly; the schedule's faults must not make that likely.
    "WATTSWEEP_MAX_ATTEMPTS": "6",
    "WATTSWEEP_BASELINE_WINDOW_S": "0.5",
    "WATTSWEEP_DB_RETRY_S": "300",
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Fault:
    at_fraction: float  # fired once this share of the units is stored
    kind: str  # one of KINDS
    worker: int  # the worker slot it aims at (kill, stop, clock)
    seconds: float  # stop: how long stopped; redis/postgres: how long down; clock: the offset


@dataclass
class ChaosConfig:
    seed: int
    folder: Path
    models: int = 10
    repetitions: int = 5
    shards_per_run: int = 4
    # Queries per unit: about three seconds of work here, so that faults land inside units and a quiet machine
    # does not drain the sweep (in half a minute at 20) before every planned fault has fired.
    shard_queries: int = 60
    workers: int = 4
    faults: int = 10  # at least one of each kind
    fault_span: tuple[float, float] = (0.05, 0.85)  # the shares of units stored between which faults fire
    fault_gap_s: float = 2.0  # at least this long between the starts of two faults
    deadline_s: float = 900.0  # for the sweep, from its submission
    ready_timeout_s: float = 300.0  # for the workers' first start (torch and CodeCarbon imports on a busy machine)
    log: object = print

    @property
    def planned_units(self) -> int:
        return self.models * self.repetitions * self.shards_per_run


@dataclass
class ChaosResult:
    units: int
    faults: int
    lost: int
    duplicated: int
    wall_s: float
    stuck_jobs: int = 0
    failed_without_reason: int = 0
    inconsistent: int = 0
    finished: bool = True
    failed_jobs: dict[int, str] = field(default_factory=dict)
    clock: str = ""
    stored_with_clock_off: int = 0  # units stored by workers after their clock was stepped
    retried: int = 0  # claims beyond each unit's first: units the faults took from a worker mid-unit

    @property
    def ok(self) -> bool:
        return self.finished and not (self.lost or self.duplicated or self.stuck_jobs or self.failed_without_reason
                                      or self.inconsistent)

    def line(self) -> str:
        return (f"units={self.units} faults={self.faults} lost={self.lost} duplicated={self.duplicated} "
                f"wall_s={self.wall_s:.0f}")


def plan_faults(seed: int, n: int, workers: int, span: tuple[float, float] = (0.05, 0.85)) -> list[Fault]:
    """`n` faults (at least one of each kind), at seeded fractions of the sweep within `span`, in order."""
    rng = random.Random(seed)
    kinds = list(KINDS) + [rng.choice(("kill", "kill", "stop", "redis", "postgres")) for _ in range(n - len(KINDS))]
    rng.shuffle(kinds)
    fractions = sorted(rng.uniform(*span) for _ in kinds)
    faults = []
    for fraction, kind in zip(fractions, kinds, strict=True):
        seconds = {"stop": rng.uniform(1.0, 10.0), "redis": rng.uniform(0.0, 3.0), "postgres": rng.uniform(0.0, 10.0),
                   "clock": rng.choice((-1, 1)) * rng.uniform(10.0, 30.0)}.get(kind, 0.0)
        faults.append(Fault(round(fraction, 3), kind, rng.randrange(workers), round(seconds, 1)))
    return faults


class Clock:
    """A process's wall clock, offset by what a file says (read again while it runs), through libfaketime if it
    works here with Python, else tests/distributed/fakeclock. Monotonic clocks are left alone either way."""

    def __init__(self, path: Path, use_libfaketime: bool) -> None:
        self.path, self.use_libfaketime = path, use_libfaketime
        self.set(0.0)

    @staticmethod
    def probe(folder: Path) -> bool:
        """Whether libfaketime shifts Python's clock without breaking sleeps and timed waits (0.9.10 does not:
        with FAKETIME="+10s", threading.Event().wait(0.1) never returns; with monotonic clocks left alone,
        time.sleep fails with EINVAL)."""
        if not LIBFAKETIME.exists():
            return False
        clock = Clock(folder / "clock-probe", use_libfaketime=True)
        clock.set(10.0)
        probe = ("import threading, time; t = time.time(); time.sleep(0.05); threading.Event().wait(0.05); "
                 "lock = threading.Lock(); lock.acquire(); lock.acquire(timeout=0.05); print(t)")
        try:
            result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=3,
                                    env=os.environ | clock.env())
        except subprocess.TimeoutExpired:
            return False
        with contextlib.suppress(ValueError):
            return result.returncode == 0 and abs(float(result.stdout) - time.time() - 10) < 3
        return False

    def env(self) -> dict[str, str]:
        if self.use_libfaketime:
            return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.path),
                    "FAKETIME_NO_CACHE": "1"}
        path = os.pathsep.join(filter(None, [str(FAKE_CLOCK), os.environ.get("PYTHONPATH")]))
        return {"FAKE_CLOCK_FILE": str(self.path), "PYTHONPATH": path}

    def set(self, offset_s: float) -> None:
        text = f"{offset_s:+.0f}s" if self.use_libfaketime else f"{offset_s:.1f}"
        scratch = self.path.with_suffix(".new")
        scratch.write_text(text + "\n")
        scratch.replace(self.path)  # atomic: a reader never sees half a number


class Supervised:
    """One supervised process slot: started again under the same arguments whenever it exits."""

    def __init__(self, name: str, argv: list[str], env: dict, folder: Path) -> None:
        self.name, self.argv, self.env, self.folder = name, argv, env, folder
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.stopped_until: float | None = None  # SIGSTOPped: not restarted, SIGCONT at this monotonic time
        self.next_start = 0.0

    def ready(self) -> bool:
        """Whether its latest start reached Celery's ` ready.` line."""
        latest = self.log_path.read_text(errors="replace").rsplit("--- start ", 1)[-1]
        return " ready." in latest

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"--- start {self.starts + 1} ({time.strftime('%H:%M:%S')})\n")
            log.flush()
            self.process = subprocess.Popen(self.argv, cwd=self.folder, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1

    def supervise(self, now: float) -> None:
        if self.stopped_until is not None:
            if now >= self.stopped_until:
                self.signal(signal.SIGCONT)
                self.stopped_until = None
            return
        if self.process is None or self.process.poll() is not None:
            if self.next_start == 0.0:
                self.next_start = now + 0.5  # a supervisor's restart delay
            elif now >= self.next_start:
                self.next_start = 0.0
                self.start()

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)


def end_all(processes: list[Supervised], timeout_s: float = 20.0) -> None:
    """SIGCONT and SIGTERM to every one at once, then SIGKILL to those still running after `timeout_s`."""
    running = [p.process for p in processes if p.process is not None and p.process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def save_tiny_model(folder: Path) -> Path:
    from worker.models.loading import load_for_task

    model = folder / "bert"
    if not (model / "config.json").exists():
        load_for_task("tiny:bert", "fill-mask", "cpu").save_pretrained(model)
    return model


def sweep_text(name: str, config: ChaosConfig, model: Path) -> str:
    references = []
    for i in range(config.models):
        link = config.folder / f"m{i}"
        if not link.exists():
            os.symlink(model, link)
        references.append(f"path:{link}")
    queries = config.shards_per_run * config.shard_queries
    return (f"name: {name}\n"
            f"defaults: {{queries: {queries}, shard_queries: {config.shard_queries}, "
            f"repetitions: {config.repetitions}, warmup: 0, batch_size: 1}}\n"
            "carbon: {grid_intensity_g_per_kwh: 100}\n"
            "tasks:\n  fill-mask:\n"
            f"    models: [{', '.join(references)}]\n"
            "    datasets: [builtin:texts]\n")


def run_chaos(config: ChaosConfig) -> ChaosResult:
    from sqlalchemy import create_engine, text

    from db.migrate import upgrade
    from tests.services import PrivatePostgres, PrivateRedis

    log = config.log
    folder = config.folder
    folder.mkdir(parents=True, exist_ok=True)
    use_libfaketime = Clock.probe(folder)
    clock = "libfaketime" if use_libfaketime else "fakeclock (libfaketime breaks Python's timed waits here)"
    faults = plan_faults(config.seed, config.faults, config.workers, config.fault_span)
    log(f"seed {config.seed}: {config.planned_units} units on {config.workers} workers; clock offsets via {clock}")
    for fault in faults:
        log(f"  planned: at {fault.at_fraction:.0%} {describe(fault)}")
    began = time.monotonic()
    queue = f"chaos-{uuid.uuid4().hex[:6]}"
    acl = least_privilege_acl(folder, queue)
    with PrivatePostgres(settings={"max_connections": "100"}) as pg, PrivateRedis(config={"aclfile": str(acl)}) \
            as broker:
        admin = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('CREATE DATABASE "chaos"'))
        admin.dispose()
        url = pg.url("chaos")
        upgrade(url)
        scheduler_url, node_url = least_privilege_roles(url)
        log(f"  private Postgres and Redis up, database migrated after {time.monotonic() - began:.0f} s; workers "
            f"as a node role and worker-{queue}, the scheduler as wattsweep_app and wattsweep")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WATTSWEEP_", "FAKE", "LD_PRELOAD"))}
        scheduler_broker = f"redis://wattsweep:{ACL_PASSWORDS['REDIS_PASSWORD']}@{broker.host}:{broker.port}/0"
        env = base | SETTINGS | {"WATTSWEEP_DATABASE_URL": scheduler_url, "WATTSWEEP_BROKER_URL": scheduler_broker,
                                 "WATTSWEEP_DATA_ROOTS": str(folder)}
        worker_env = env | {"WATTSWEEP_DATABASE_URL": node_url,
                            "WATTSWEEP_BROKER_URL": f"redis://worker-{queue}:{ACL_PASSWORDS['worker']}@"
                                                    f"{broker.host}:{broker.port}/0"}
        wattsweep = [sys.executable, "-m", "scheduler"]
        clocks = [Clock(folder / f"clock-w{i}", use_libfaketime) for i in range(config.workers)]
        workers = [Supervised(f"w{i}", [*wattsweep, "worker", "--device", "cpu", "--queue", queue,
                                        "--name", f"w{i}@chaos"], worker_env | clocks[i].env(), folder)
                   for i in range(config.workers)]
        reconciler = Supervised("reconcile", [*wattsweep, "reconcile", "--watch", "--interval", "1"], env, folder)
        everyone = [*workers, reconciler]
        sessions = _sessions(url)
        fired = 0
        stepped: dict[float, int] = {}  # when a worker's clock was stepped (epoch s) -> its slot
        finished = False
        wall_s = 0.0
        try:
            booted = time.monotonic()
            for process in everyone:
                process.start()
            model = save_tiny_model(folder)  # while the workers start
            while not all(worker.ready() for worker in workers):
                if time.monotonic() - booted > config.ready_timeout_s:
                    raise RuntimeError(f"workers not ready after {config.ready_timeout_s:.0f} s; logs in {folder}")
                time.sleep(0.5)
            log(f"  {config.workers} workers ready after {time.monotonic() - booted:.0f} s")
            (folder / "sweep.yaml").write_text(sweep_text(f"chaos-{config.seed}", config, model))
            submitted = subprocess.run([*wattsweep, "submit", "sweep.yaml", "--hardware-class", queue], cwd=folder,
                                       env=env, capture_output=True, text=True, timeout=120)
            if submitted.returncode != 0:
                raise RuntimeError(f"submit failed: {submitted.stdout}{submitted.stderr}")
            start = time.monotonic()
            deadline = start + config.deadline_s
            pending = list(faults)
            last_fault = 0.0
            while time.monotonic() < deadline:
                now = time.monotonic()
                for process in everyone:
                    process.supervise(now)
                progress = _progress(sessions)
                if progress is not None:
                    stored, unfinished_jobs = progress
                    if unfinished_jobs == 0:
                        if pending:
                            log(f"  the sweep finished before {len(pending)} fault(s); not fired")
                        finished = True
                        break
                    # Faults may overlap (a Postgres restart while a worker is stopped), their starts spaced.
                    if pending and stored >= pending[0].at_fraction * config.planned_units \
                            and now - last_fault >= config.fault_gap_s:
                        target = _target(pending[0], workers, sessions, spare=set(stepped.values()))
                        if target is not None:
                            fault = pending.pop(0)
                            log(f"  t={now - start:5.1f}s {stored}/{config.planned_units} stored: "
                                f"{describe(fault, target)}")
                            if fault.kind == "clock":
                                stepped[time.time()] = target
                            _fire(fault, target, workers, clocks, pg, broker)
                            fired += 1
                            last_fault = time.monotonic()
                time.sleep(0.2)
            wall_s = time.monotonic() - start
        finally:
            end_all(everyone)
        log(f"  {time.monotonic() - began:.0f} s in all, workers stopped")
        result = check_stored(sessions, config.planned_units)
        result.faults, result.wall_s, result.finished, result.clock = fired, wall_s, finished, clock
        result.stored_with_clock_off = _stored_after(sessions, stepped)
        restarts = {w.name: w.starts - 1 for w in workers}
        log(f"  worker restarts {restarts}; reconcile starts {reconciler.starts}; logs in {folder}")
        if not finished:
            log(f"  not finished within {config.deadline_s:.0f} s")
        if result.failed_jobs:
            log(f"  failed jobs: {result.failed_jobs}")
        log(f"  stuck jobs={result.stuck_jobs} failed without a reason={result.failed_without_reason} "
            f"inconsistent={result.inconsistent}; claims beyond a unit's first: {result.retried}; "
            f"units stored by a worker with its clock off: {result.stored_with_clock_off}")
        sessions.kw["bind"].dispose()
        return result


def describe(fault: Fault, target: int | None = None) -> str:
    worker = f"w{fault.worker if target is None else target}"
    return {
        "kill": f"SIGKILL {worker}",
        "stop": f"SIGSTOP {worker} for {fault.seconds:.1f} s, then SIGCONT",
        "redis": f"Redis restart (down {fault.seconds:.1f} s, queues lost)",
        "postgres": f"Postgres restart (fast shutdown, down {fault.seconds:.1f} s)",
        "clock": f"{worker}'s clock stepped {fault.seconds:+.0f} s",
    }[fault.kind]


def _target(fault: Fault, workers: list[Supervised], sessions, spare: set[int]) -> int | None:
    """The slot a worker fault hits now: the planned one if it is up and ready, else the next that is, one
    holding a unit first; None (wait) while no worker is ready. Faults on the services need no target.
    Slots in `spare` (clock already stepped) come last, so that a worker with a wrong clock goes on working."""
    if fault.kind not in ("kill", "stop", "clock"):
        return fault.worker
    order = sorted(((fault.worker + k) % len(workers) for k in range(len(workers))), key=lambda i: i in spare)
    ready = [i for i in order if workers[i].stopped_until is None and workers[i].process is not None
             and workers[i].process.poll() is None and workers[i].ready()]
    holding = _holders(sessions)
    return next((i for i in ready if f"w{i}@chaos" in holding), ready[0] if ready else None)


def _holders(sessions) -> set[str]:
    from sqlalchemy import select

    from db.models import Shard

    try:
        with sessions() as session:
            return set(session.scalars(select(Shard.lease_worker_id).where(Shard.status == "running")))
    except Exception:  # noqa: BLE001 - the database may be down
        return set()


ACL_PASSWORDS = {"REDIS_PASSWORD": "chaosscheduler1", "REDIS_FLOWER_PASSWORD": "chaosflower2", "worker": "chaosworker3"}


def least_privilege_acl(folder: Path, queue: str) -> Path:
    """Compose's Redis users (deploy/redis-start.sh renders deploy/redis-users.acl), with `queue`'s worker user."""
    root = Path(__file__).resolve().parents[2]
    acl = folder / "users.acl"
    env = os.environ | {k: v for k, v in ACL_PASSWORDS.items() if k != "worker"} | {
        "REDIS_WORKERS": f"{queue}:{ACL_PASSWORDS['worker']}", "REDIS_ACL_TEMPLATE": str(root / "deploy" /
                                                                                         "redis-users.acl"),
        "REDIS_ACL_FILE": str(acl), "REDIS_ACL_ONLY": "1"}
    subprocess.run(["sh", str(root / "deploy" / "redis-start.sh")], env=env, check=True, capture_output=True,
                   timeout=30)
    return acl


def least_privilege_roles(url: str) -> tuple[str, str]:
    """The scheduler's URL (wattsweep_app) and a node role's (`wattsweep db add-node`'s), on the migrated `url`."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from db.nodes import create_node_role, node_role

    role = node_role("chaos")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        create_node_role(connection, role)
    admin.dispose()
    as_role = [make_url(url).set(username=name, password=None).render_as_string(hide_password=False)
               for name in ("wattsweep_app", role.role)]
    return as_role[0], as_role[1]


def _fire(fault: Fault, target: int, workers: list[Supervised], clocks: list[Clock], pg, broker) -> None:
    worker = workers[target]
    if fault.kind == "kill":
        worker.signal(signal.SIGKILL)
    elif fault.kind == "stop":
        worker.signal(signal.SIGSTOP)
        worker.stopped_until = time.monotonic() + fault.seconds
    elif fault.kind == "redis":
        broker.stop()
        time.sleep(fault.seconds)
        broker.start()
    elif fault.kind == "postgres":
        pg.stop()  # SIGINT to the postmaster: a fast shutdown, as pg_ctl -m fast sends
        time.sleep(fault.seconds)
        pg.start()
    elif fault.kind == "clock":
        clocks[target].set(fault.seconds)  # the running process's clock steps; it stays off after restarts


def _sessions(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 3})
    return sessionmaker(engine)


def _progress(sessions) -> tuple[int, int] | None:
    """(units stored, jobs queued or running), or None while the database is down."""
    from sqlalchemy import func, select

    from db.models import Job, Shard

    try:
        with sessions() as session:
            stored = session.scalar(select(func.count()).select_from(Shard).where(Shard.status == "done"))
            unfinished = session.scalar(select(func.count()).select_from(Job)
                                        .where(Job.status.in_(("queued", "running"))))
            return stored, unfinished
    except Exception:  # noqa: BLE001 - the database is one of the things this run restarts
        return None


def _stored_after(sessions, stepped: dict[float, int]) -> int:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from db.models import Shard

    total = 0
    with sessions() as session:
        for at, slot in stepped.items():
            since = datetime.fromtimestamp(at, UTC)
            total += session.scalar(select(func.count()).select_from(Shard).where(
                Shard.worker_id == f"w{slot}@chaos", Shard.status == "done", Shard.finished_at > since))
    return total


def check_stored(sessions, planned: int) -> ChaosResult:
    """Every unit stored exactly once (its one window: a whole run's `query` row, or a shard's `shard` row),
    every run's `query` row once when all its units are, and every job `done` or `failed` with a reason."""
    from sqlalchemy import func, select

    from db.models import Job, Measurement, Run, Shard

    with sessions() as session:
        shards = session.execute(select(Shard.id, Shard.status, Shard.attempts)).all()
        windows = dict(session.execute(
            select(Measurement.shard_id, func.count()).where(Measurement.shard_id.is_not(None))
            .where(Measurement.phase.in_(("query", "shard"))).group_by(Measurement.shard_id)).all())
        runs = session.execute(select(Run.id, Run.status, func.count(Shard.id), func.count(Shard.id).filter(
            Shard.status == "done")).join(Shard, Shard.run_id == Run.id).group_by(Run.id, Run.status)).all()
        query_rows = dict(session.execute(select(Measurement.run_id, func.count()).where(Measurement.phase == "query")
                                          .group_by(Measurement.run_id)).all())
        jobs = session.execute(select(Job.id, Job.status, Job.last_error)).all()
    lost = sum(1 for shard in shards if windows.get(shard.id, 0) == 0) + max(0, planned - len(shards))
    duplicated = sum(1 for shard in shards if windows.get(shard.id, 0) > 1)
    inconsistent = sum(1 for shard in shards if (shard.status == "done") != (windows.get(shard.id, 0) >= 1))
    for run_id, status, n_units, n_done in runs:
        complete = n_units == n_done
        inconsistent += (status == "done") != complete or query_rows.get(run_id, 0) != (1 if complete else 0)
    return ChaosResult(
        units=len(shards), faults=0, lost=lost, duplicated=duplicated, wall_s=0.0,
        stuck_jobs=sum(1 for job in jobs if job.status not in ("done", "failed")),
        failed_without_reason=sum(1 for job in jobs if job.status == "failed" and not (job.last_error or "").strip()),
        inconsistent=inconsistent, retried=sum(max(0, shard.attempts - 1) for shard in shards),
        failed_jobs={job.id: (job.last_error or "")[:120] for job in jobs if job.status == "failed"},
    )
