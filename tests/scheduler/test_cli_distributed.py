"""Distributed commands on bad input or unreachable services: one line, password masked, exit 2, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Sweep
from db.session import session_factory
from tests.distributed.conftest import REDIS_URL, sweep_yaml
from tests.test_local_sweep import wattsweep

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


def test_a_second_worker_under_a_live_name_is_refused(cli, postgres_url):
    from db.models import Worker

    with session_factory(postgres_url).begin() as session:
        session.add(Worker(id="gpu0@node7", hostname="node7", device="cuda:0", hardware_class="a100", inventory={}))
    result = cli("worker", "--device", "cpu", "--queue", "a100", "--name", "gpu0@node7", database_url=postgres_url,
                 broker_url=f"{REDIS_URL}/15")
    one_line_error(result, "worker gpu0@node7 is already running")


def test_submit_refuses_a_queue_name_celery_uses(cli):
    one_line_error(cli("submit", "sweep.yaml", "--hardware-class", "unacked"), "a name Celery uses itself")
