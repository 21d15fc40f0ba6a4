"""Distributed commands on bad input or unreachable services: one line, password masked, exit 2, nothing written."""

from __future__ import annotations

import contextlib

import pytest
import redis
from sqlalchemy import func, select

from db.models import Sweep
from db.session import session_factory
from tests.distributed.conftest import REDIS_URL, redis_db, sweep_yaml  # noqa: F401  (a fixture)
from tests.helpers import wattsweep

DEAD_BROKER = "redis://:secret@127.0.0.1:1/0"


def one_line_error(result, expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def cli(tmp_path):
    def call(*args, database_url=None, broker_url=None):
        extra = ["--broker-url", broker_url] if broker_url else []
        return wattsweep(*args, *extra, cwd=tmp_path, env_url=database_url)
    call.folder = tmp_path
    (tmp_path / "sweep.yaml").write_text(sweep_yaml("cli", ["tiny:bert"]))
    return call


def test_submit_with_the_broker_down_writes_nothing(cli, postgres_url):
    result = cli("submit", "sweep.yaml", database_url=postgres_url, broker_url=DEAD_BROKER)
    one_line_error(result, "cannot reach the broker at redis://:***@127.0.0.1:1/0")
    with session_factory(postgres_url)() as session:
        assert session.scalar(select(func.count()).select_from(Sweep)) == 0


def test_worker_with_the_database_down(cli):
    result = cli("worker", "--device", "cpu", "--queue", "q", database_url="postgresql://u:secret@127.0.0.1:1/x")
    one_line_error(result, "cannot reach the database at postgresql+psycopg://u:***@127.0.0.1:1/x")


def test_worker_with_the_broker_down(cli, postgres_url):
    result = cli("worker", "--device", "cpu", "--queue", "q", database_url=postgres_url, broker_url=DEAD_BROKER)
    one_line_error(result, "cannot reach the broker at redis://:***@127.0.0.1:1/0")


def test_worker_on_a_gpu_this_host_does_not_have(cli, postgres_url):
    result = cli("worker", "--gpu", "0", "--queue", "a100", database_url=postgres_url, broker_url=f"{REDIS_URL}/15")
    one_line_error(result, "--gpu 0: NVML")


def test_worker_needs_a_device_and_retry_needs_failed(cli):
    one_line_error(cli("worker", "--queue", "q"), "give exactly one of --gpu N")
    one_line_error(cli("retry", "1"), "wattsweep retry SWEEP --failed")


@pytest.mark.parametrize(("args", "message"), [
    (["--gpu", "0"], "--split-when-drained splits a group of GPUs: give it with --gpus N,M,..."),
    (["--gpus", "3"], "--gpus 3 --split-when-drained: a group of one GPU has nothing to split; use --gpu 3"),
    (["--gpus", "0,1", "--queue", "h100-x2"], "--queue: hardware class 'h100-x2' ends in '-x2'"),
])
def test_split_when_drained_needs_a_group_and_a_class_that_is_not_a_groups_queue(cli, args, message):
    queue = [] if "--queue" in args else ["--queue", "h100"]
    one_line_error(cli("worker", *args, *queue, "--split-when-drained"), message)


def test_a_second_worker_under_a_live_name_is_refused(cli, postgres_url):
    from db.models import Worker

    with session_factory(postgres_url).begin() as session:
        session.add(Worker(id="gpu0@node7", hostname="node7", device="cuda:0", hardware_class="a100", inventory={}))
    result = cli("worker", "--device", "cpu", "--queue", "a100", "--name", "gpu0@node7", database_url=postgres_url,
                 broker_url=f"{REDIS_URL}/15")
    one_line_error(result, "worker gpu0@node7 is already running")


def test_submit_refuses_a_queue_name_celery_uses(cli):
    one_line_error(cli("submit", "sweep.yaml", "--hardware-class", "unacked"), "a name Celery uses itself")


class OneConnectionProxy:
    """A TCP proxy to Redis that serves the first connection (submit's broker check) and refuses every later one:
    the broker goes away between the check and the send, as in issue 11's defect 9."""

    def __init__(self, target_port: int = 6379) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket
        import threading

        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        self.listener.close()  # from now on: connection refused
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pipe(source, sink) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()


def test_submit_when_the_broker_drops_after_its_check_says_what_was_stored_and_reconcile_sends_it(
        cli, postgres_url, request):
    """Issue 11, defect 9: one line naming the stored sweep and what was not sent, exit 1, no traceback; the jobs
    are not marked sent, so that `wattsweep reconcile` sends them at once (not after the grace period)."""
    from db.models import Job
    from worker.contract.broker import ready_job_ids

    number = request.getfixturevalue("redis_db")  # the distributed tests' Redis database lock
    (cli.folder / "three.yaml").write_text(sweep_yaml("dropped", ["tiny:bert", "hub:org/a", "hub:org/b"]))
    proxy = OneConnectionProxy()
    try:
        result = cli("submit", "three.yaml", "--hardware-class", "cpu-drop", database_url=postgres_url,
                     broker_url=f"redis://127.0.0.1:{proxy.port}/{number}")
    finally:
        proxy.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with session_factory(postgres_url)() as session:
        sweep_id = session.scalar(select(Sweep.id).where(Sweep.name == "dropped"))
        jobs = session.scalars(select(Job).where(Job.sweep_id == sweep_id)).all()
    assert (f"sweep dropped stored as id {sweep_id}; 3 job messages not sent; `wattsweep reconcile` sends them"
            in result.stderr)
    assert len(jobs) == 3 and {j.status for j in jobs} == {"queued"} and {j.dispatched_at for j in jobs} == {None}
    broker_url = f"{REDIS_URL}/{number}"
    result = cli("reconcile", database_url=postgres_url, broker_url=broker_url)
    assert result.returncode == 0 and "3 lost job(s)" in result.stdout, result.stdout + result.stderr
    client = redis.Redis.from_url(broker_url)
    try:
        assert ready_job_ids(client, ["cpu-drop"]) == {j.id for j in jobs}
    finally:
        client.close()


def test_submitting_a_sweep_again_while_it_is_unfinished_is_refused_unless_new(cli, postgres_url, request):
    """Issue 11, defect 9: a second submit of an unfinished sweep would measure everything twice."""
    broker_url = f"{REDIS_URL}/{request.getfixturevalue('redis_db')}"

    def sweeps() -> list[int]:
        with session_factory(postgres_url)() as session:
            return list(session.scalars(select(Sweep.id).where(Sweep.name == "cli").order_by(Sweep.id)))

    assert cli("submit", "sweep.yaml", database_url=postgres_url, broker_url=broker_url).returncode == 0
    first = sweeps()[0]
    result = cli("submit", "sweep.yaml", database_url=postgres_url, broker_url=broker_url)
    one_line_error(result, f"sweep cli (id {first}) is unfinished (1 job(s) queued, 0 running)")
    assert "--new" in result.stderr and sweeps() == [first]
    result = cli("submit", "sweep.yaml", "--new", database_url=postgres_url, broker_url=broker_url)
    assert result.returncode == 0, result.stderr
    assert len(sweeps()) == 2
    for sweep_id in sweeps():  # cancelled sweeps are finished: a plain submit goes through again
        assert cli("cancel", str(sweep_id), database_url=postgres_url).returncode == 0
    assert cli("submit", "sweep.yaml", database_url=postgres_url, broker_url=broker_url).returncode == 0
    assert len(sweeps()) == 3
