"""A real little cluster per test: a fresh Postgres database, a Redis database of its own, a unique queue,
and real `wattsweep worker` processes on loopback. No eager mode, no mocks.

Leases are short (WATTSWEEP_LEASE_TIMEOUT_S) so that takeovers happen in
seconds. Redis databases are taken with a lock key, so concurrent test
sessions on one Redis never flush each other's queues.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from db.models import Job, Measurement, Run
from db.session import session_factory

REDIS_URL = os.environ.get("WATTSWEEP_TEST_REDIS", "redis://127.0.0.1:6379")
LOCK_KEY = "wattsweep-test-lock"
FAST = {
    "WATTSWEEP_LEASE_TIMEOUT_S": "4",
    "WATTSWEEP_HEARTBEAT_INTERVAL_S": "0.5",
    "WATTSWEEP_DISPATCH_GRACE_S": "1",
    "WATTSWEEP_RECONCILE_INTERVAL_S": "1",
    "WATTSWEEP_MAX_ATTEMPTS": "2",
    "HF_HUB_OFFLINE": "1",
    "WATTSWEEP_BASELINE_WINDOW_S": "0.5",  # the idle baseline path runs, without a 20 s sleep per worker
    # ... and settles a simulated GPU, or waits for busy co-located neighbours, for seconds, not minutes
    "WATTSWEEP_BASELINE_SETTLE_WINDOW_S": "0.5",
    "WATTSWEEP_BASELINE_SETTLE_TIMEOUT_S": "5",
    "WATTSWEEP_BASELINE_NEIGHBOUR_WAIT_S": "2",
    "OMP_NUM_THREADS": "1",  # several workers share 2 cores: without this, torch's spinning threads starve each other
}


@contextmanager
def free_redis_db() -> Iterator[int]:
    """A Redis database number no one else is using, flushed after (skips the test when there is none)."""
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set(LOCK_KEY, str(os.getpid()), nx=True, ex=900):
            try:
                yield number
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.skip("no free Redis database (1-15) for a distributed test")


@pytest.fixture
def redis_db():
    """A Redis database number no one else is using, flushed before and after."""
    with free_redis_db() as number:
        yield number


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT fill-mask model saved once; jobs point at symlinks to it so that each is a distinct model."""
    from worker.models.loading import load_for_task

    folder = tmp_path_factory.mktemp("models") / "bert"
    load_for_task("tiny:bert", "fill-mask", "cpu").save_pretrained(folder)
    return folder


def sweep_yaml(name: str, models: list[str], *, queries: int = 2, repetitions: int = 1) -> str:
    return (
        f"name: {name}\n"
        f"defaults: {{queries: {queries}, repetitions: {repetitions}, warmup: 0, batch_size: 1}}\n"
        "carbon: {grid_intensity_g_per_kwh: 100}\n"
        "tasks:\n  fill-mask:\n"
        f"    models: [{', '.join(models)}]\n"
        "    datasets: [builtin:texts]\n"
    )


class WorkerProcess:
    def __init__(self, name: str, process: subprocess.Popen, log_path: Path) -> None:
        self.name, self.process, self.log_path = name, process, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while " ready." not in self.log():
            assert self.process.poll() is None, f"worker {self.name} exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"worker {self.name} not ready:\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)


class Cluster:
    def __init__(self, database_url: str, broker_url: str, folder: Path) -> None:
        self.database_url, self.broker_url, self.folder = database_url, broker_url, folder
        self.queue = f"cpu-{uuid.uuid4().hex[:8]}"
        self.sessions = session_factory(database_url)
        self.redis = redis.Redis.from_url(broker_url)
        self.processes: list[subprocess.Popen] = []
        base = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_") or k == "WATTSWEEP_DATA_ROOTS"}
        self.env = base | FAST | {"WATTSWEEP_DATABASE_URL": database_url, "WATTSWEEP_BROKER_URL": broker_url}

    def flush_broker(self) -> None:
        """FLUSHDB, as a Redis restart without persistence would; our lock on the database is kept."""
        self.redis.flushdb()
        self.redis.set(LOCK_KEY, str(os.getpid()), ex=900)

    def wattsweep(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s)

    def spawn(self, *args: str, log_name: str) -> tuple[subprocess.Popen, Path]:
        log_path = self.folder / f"{log_name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "scheduler", *args], cwd=self.folder, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, log_path

    def model_copies(self, model_dir: Path, n: int) -> list[str]:
        """`n` distinct `path:` references to one saved model (symlinks): n jobs of equal work."""
        references = []
        for i in range(n):
            os.symlink(model_dir, self.folder / f"m{i}")
            references.append(f"path:{self.folder / f'm{i}'}")
        return references

    def start_worker(self, name: str) -> WorkerProcess:
        process, log_path = self.spawn("worker", "--device", "cpu", "--queue", self.queue, "--name", f"{name}@test",
                                       log_name=name)
        return WorkerProcess(f"{name}@test", process, log_path)

    def submit(self, text: str) -> int:
        (self.folder / "sweep.yaml").write_text(text)
        result = self.wattsweep("submit", "sweep.yaml", "--hardware-class", self.queue)
        assert result.returncode == 0, result.stderr
        with self.sessions() as session:
            return session.scalar(select(func.max(Job.sweep_id)))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 300, logs=()) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {w.name}\n{w.log()[-2500:]}" for w in logs)
                pytest.fail(f"timed out waiting for {what}; jobs: {self.job_statuses()}\n{tails}")
            time.sleep(0.2)

    def job_statuses(self) -> dict[str, int]:
        with self.sessions() as session:
            return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())

    def finished(self) -> bool:
        statuses = self.job_statuses()
        return statuses.get("queued", 0) == 0 and statuses.get("running", 0) == 0

    def assert_every_run_stored_once(self, sweep_id: int) -> None:
        with self.sessions() as session:
            runs = session.scalars(select(Run).join(Job).where(Job.sweep_id == sweep_id)).all()
            query_windows = select(Measurement.run_id, func.count()).where(Measurement.phase == "query")
            per_run = dict(session.execute(query_windows.group_by(Measurement.run_id)).all())
        done = [run for run in runs if run.status == "done"]
        assert {per_run.get(run.id, 0) for run in done} == {1}, "a done run without exactly one measurement"
        assert sum(per_run.values()) == len(done), "a measurement for a run that is not done"

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.redis.close()


@pytest.fixture
def cluster(postgres_url, redis_db, tmp_path):
    cluster = Cluster(postgres_url, f"{REDIS_URL}/{redis_db}", tmp_path)
    yield cluster
    cluster.close()
