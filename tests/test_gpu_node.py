"""Eight pinned workers on the simulated 8-GPU node drain a sweep: every joule is counted once (issue 9).

Real Postgres, Redis, Celery and `wattsweep worker --gpu N` processes; only NVML and RAPL are fakes
(tests/simnode), read by the real CodeCarbon. Each worker runs in its own UTS namespace with its own hostname
(as containers of one node do), on one kernel. One drain, shared by the tests below; the host's CPU power
changes every second while the workers' windows overlap.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from db.models import Measurement, Worker
from tests.conftest import POSTGRES_ADMIN_URL
from tests.distributed.conftest import (
    REDIS_URL,
    Cluster,
    WorkerProcess,
    free_redis_db,
    sweep_yaml,
    tiny_bert_dir,  # noqa: F401 - the fixture, by name
)
from tests.helpers import spawn_on_node
from tests.scratch_db import scratch_database
from tests.simnode import SimNode
from tests.simnode.host_truth import assert_host_counted_once

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

GPUS = 8
GPU_W = [60.0 + 20.0 * i for i in range(GPUS)]  # distinct: metering a neighbour's GPU shows
PACKAGE_W = itertools.cycle([[60.0, 45.0], [180.0, 150.0], [110.0, 70.0], [240.0, 200.0]])


@dataclass
class Drained:
    node: SimNode
    workers: list[Worker]
    windows: list[Measurement]  # every window the node stored (a sharded run's sum row is no window)
    boot_id: str


def start_pinned(cluster: Cluster, node: SimNode, gpu: int) -> WorkerProcess:
    hostname = f"ctr{gpu}"
    return spawn_on_node(cluster, node, hostname, "worker", "--gpu", str(gpu), "--queue", cluster.queue,
                         hostname=hostname)


@pytest.fixture(scope="module")
def drained(tmp_path_factory, tiny_bert_dir):  # noqa: F811
    folder = tmp_path_factory.mktemp("gpu-node")
    with free_redis_db() as number, scratch_database(POSTGRES_ADMIN_URL, "wattsweep_test") as url, \
            SimNode(folder / "node", gpus=GPUS, nvml_update_s=0.005, gpu_w=GPU_W) as node:
        cluster = Cluster(url, f"{REDIS_URL}/{number}", folder)
        cluster.env = node.env(cluster.env)
        stop = threading.Event()

        def change_host_power() -> None:
            while not stop.wait(1.0):
                node.set_power(package_w=next(PACKAGE_W))

        changer = threading.Thread(target=change_host_power, daemon=True)
        try:
            workers = [start_pinned(cluster, node, gpu) for gpu in range(GPUS)]
            for worker in workers:
                worker.wait_ready(timeout_s=300)
            changer.start()
            sweep_id = cluster.submit(sweep_yaml("node", cluster.model_copies(tiny_bert_dir, GPUS), queries=60,
                                                 repetitions=2))
            cluster.wait_for(cluster.finished, "the node to drain the sweep", timeout_s=300, logs=workers)
            stop.set()
            changer.join()
            cluster.assert_every_run_stored_once(sweep_id)
            with cluster.sessions() as session:
                rows = session.scalars(select(Worker).order_by(Worker.id)).all()
                windows = session.scalars(select(Measurement).where(Measurement.host_id.is_not(None))
                                          .order_by(Measurement.started_at)).all()
            with open("/proc/sys/kernel/random/boot_id") as handle:
                yield Drained(node, rows, windows, handle.read().strip())
        finally:
            stop.set()
            cluster.close()


def test_each_pinned_worker_meters_its_own_gpu(drained):
    by_gpu = {}
    for worker in drained.workers:
        by_gpu[int(worker.device.removeprefix("cuda:"))] = worker
    assert sorted(by_gpu) == list(range(GPUS))
    step_s = drained.node.data["nvml_update_s"]
    for gpu, worker in by_gpu.items():
        mine = [w for w in drained.windows if w.worker_id == worker.id]
        assert mine, f"GPU {gpu}'s worker stored no window"
        assert {(w.gpu_count, w.gpu_uuid) for w in mine} == {(1, drained.node.gpus[gpu]["uuid"])}
        reads = drained.node.gpu_counter_reads(gpu, host=f"ctr{gpu}")
        for w in mine:
            started, ended = w.started_at.timestamp(), w.ended_at.timestamp()
            first_t, last_t, counted_j = drained.node.gpu_counter_window(gpu, started, ended, reads=reads)
            measured_j = w.gpu_energy_kwh * 3.6e6
            detail = f"GPU {gpu} {w.phase} window [{started:.3f}, {ended:.3f}]: {measured_j:.3f} J"
            assert measured_j == pytest.approx(counted_j, rel=1e-6, abs=1e-3), detail
            # The counter it read is its own GPU's (each GPU draws a distinct power), up to the counter's steps.
            drawn_j = drained.node.gpu_energy_j(gpu, first_t, last_t)
            assert abs(measured_j - drawn_j) <= 2 * step_s * GPU_W[gpu] + 1e-3, f"{detail}, drawn {drawn_j:.3f} J"
            assert measured_j <= drained.node.gpu_energy_j(gpu, started, ended) + step_s * GPU_W[gpu], detail


def test_attributed_cpu_and_ram_add_up_to_what_the_host_drew(drained):
    windows = drained.windows
    truth = assert_host_counted_once(drained.node, windows)
    # What was tested: windows overlapped many at a time, the host's power changed under them, and the node-wide
    # readings summed would have counted the host several times over.
    assert max(w.max_concurrent_windows for w in windows) >= 4
    assert len(drained.node.data["segments"]) >= 4
    assert sum(w.cpu_energy_kwh for w in windows) * 3.6e6 > 2 * truth.drawn_cpu_j
    assert all(w.host_samples for w in windows)


def test_workers_in_separate_uts_namespaces_are_one_host(drained):
    assert sorted(w.hostname for w in drained.workers) == [f"ctr{i}" for i in range(GPUS)]  # each its own name
    assert {w.host_id for w in drained.workers} == {f"boot:{drained.boot_id}"}  # one kernel
    assert {w.host_id for w in drained.windows} == {f"boot:{drained.boot_id}"}
    assert len({w.hostname for w in drained.windows}) == GPUS
