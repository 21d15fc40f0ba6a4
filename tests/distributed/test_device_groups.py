"""A device group beside one-GPU workers on the simulated 8-GPU node (issue 21).

Real Postgres, Redis, Celery and `wattsweep worker` processes; only NVML and RAPL are fakes (tests/simnode),
read by the real CodeCarbon. One worker holds GPUs 0-3 (`--gpus 0,1,2,3`), four hold GPUs 4-7 one each, each
in its own UTS namespace on one kernel, all of one hardware class. One sweep: two models declared `gpus: 4`
(`model_gpus`), eight of one GPU; submit sends the first to the class's queue for 4 GPUs (`one-x4`), which only
the group worker consumes, and the rest to the class's own queue. One drain, shared by the tests below, while the
host's CPU power changes every second.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from db.models import Job, Measurement, Worker
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
GROUP = [0, 1, 2, 3]
SINGLES = [4, 5, 6, 7]
GPU_W = [60.0 + 20.0 * i for i in range(GPUS)]  # distinct: metering a neighbour's GPU shows
PACKAGE_W = itertools.cycle([[60.0, 45.0], [180.0, 150.0], [110.0, 70.0], [240.0, 200.0]])
HARDWARE_CLASS = "one"


@dataclass
class Drained:
    node: SimNode
    workers: dict[str, Worker]  # by hostname: ctrg (the group), ctr4..ctr7
    windows: list[Measurement]
    refused: subprocess.CompletedProcess  # `--gpu 2` started while the group worker holds GPUs 0-3
    jobs: dict[int, int]  # job id -> the GPUs it needs (jobs.gpus)


def start(cluster: Cluster, node: SimNode, hostname: str, queue: str, *device: str) -> WorkerProcess:
    return spawn_on_node(cluster, node, hostname, "worker", *device, "--queue", queue, hostname=hostname)


def submit(cluster: Cluster, models: list[str], group_models: list[str]) -> dict[int, int]:
    """One sweep; `group_models` need 4 GPUs. Returns job id -> GPUs needed."""
    declared = "".join(f"  {ref}: {len(GROUP)}\n" for ref in group_models)
    text = sweep_yaml("groups", models + group_models, queries=40, repetitions=2) + f"model_gpus:\n{declared}"
    (cluster.folder / "groups.yaml").write_text(text)
    result = cluster.wattsweep("submit", "groups.yaml", "--hardware-class", HARDWARE_CLASS)
    assert result.returncode == 0, result.stderr
    with cluster.sessions() as session:
        return dict(session.execute(select(Job.id, Job.gpus)).all())


@pytest.fixture(scope="module")
def drained(tmp_path_factory, tiny_bert_dir):  # noqa: F811
    folder = tmp_path_factory.mktemp("gpu-groups")
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
            workers = [start(cluster, node, "ctrg", HARDWARE_CLASS, "--gpus", ",".join(map(str, GROUP)))]
            workers += [start(cluster, node, f"ctr{gpu}", HARDWARE_CLASS, "--gpu", str(gpu)) for gpu in SINGLES]
            for worker in workers:
                worker.wait_ready(timeout_s=300)
            refused = subprocess.run(node.wrap([sys.executable, "-m", "scheduler", "worker", "--gpu", "2", "--queue",
                                                HARDWARE_CLASS], hostname="ctrx"),
                                     cwd=cluster.folder, env=cluster.env, capture_output=True, text=True, timeout=300)
            changer.start()
            models = cluster.model_copies(tiny_bert_dir, 10)
            jobs = submit(cluster, models[:8], models[8:])
            cluster.wait_for(cluster.finished, "the node to drain both sweeps", timeout_s=400, logs=workers)
            stop.set()
            changer.join()
            with cluster.sessions() as session:
                rows = {w.hostname: w for w in session.scalars(select(Worker))}
                windows = session.scalars(select(Measurement).where(Measurement.host_id.is_not(None))
                                          .order_by(Measurement.started_at)).all()
                statuses = set(session.scalars(select(Job.status)))
            assert statuses == {"done"}, statuses
            yield Drained(node, rows, windows, refused, jobs)
        finally:
            stop.set()
            cluster.close()


def test_a_group_window_is_the_sum_of_its_gpus_counters_between_the_reads_that_opened_and_closed_it(drained):
    group = drained.workers["ctrg"]
    assert (group.id, group.device, group.gpu_indexes, group.hardware_class) == \
        ("gpu0-3@ctrg", "cuda:0-3", GROUP, HARDWARE_CLASS)
    assert [gpu["uuid"] for gpu in group.inventory["gpus"]] == [drained.node.gpus[i]["uuid"] for i in GROUP]
    mine = [w for w in drained.windows if w.worker_id == group.id]
    assert {w.phase for w in mine} == {"load", "query"}
    reads = {gpu: drained.node.gpu_counter_reads(gpu, host="ctrg") for gpu in GROUP}
    step_s = drained.node.data["nvml_update_s"]
    for window in mine:
        assert (window.gpu_count, window.gpu_uuid, window.gpu_method) == (4, None, "nvml-energy-counter")
        assert window.gpu_model == drained.node.gpus[0]["name"]  # GPUs 0-3 are one model
        assert [(g["index"], g["uuid"]) for g in window.gpu_energies] == \
            [(i, drained.node.gpus[i]["uuid"]) for i in GROUP]
        per_gpu_j = [g["kwh"] * 3.6e6 for g in window.gpu_energies]
        assert window.gpu_energy_kwh * 3.6e6 == pytest.approx(sum(per_gpu_j), rel=1e-9, abs=1e-6)
        started, ended = window.started_at.timestamp(), window.ended_at.timestamp()
        for gpu, measured_j in zip(GROUP, per_gpu_j, strict=True):
            first_t, last_t, counted_j = drained.node.gpu_counter_window(gpu, started, ended, reads=reads[gpu])
            detail = f"GPU {gpu} in {window.phase} window [{started:.3f}, {ended:.3f}]: {measured_j:.3f} J"
            assert measured_j == pytest.approx(counted_j, rel=1e-6, abs=1e-3), detail
            drawn_j = drained.node.gpu_energy_j(gpu, first_t, last_t)  # its own GPU's power, not a neighbour's
            assert abs(measured_j - drawn_j) <= 2 * step_s * GPU_W[gpu] + 1e-3, f"{detail}, drawn {drawn_j:.3f} J"


def test_one_gpu_workers_store_their_gpus_energy_too_and_no_gpu_is_metered_by_two_workers(drained):
    holders: dict[int, set[str]] = {}
    for worker in drained.workers.values():
        for window in (w for w in drained.windows if w.worker_id == worker.id):
            for gpu in window.gpu_energies:
                holders.setdefault(gpu["index"], set()).add(worker.id)
    assert holders == {gpu: {"gpu0-3@ctrg" if gpu in GROUP else f"gpu{gpu}@ctr{gpu}"} for gpu in range(GPUS)}
    for gpu in SINGLES:
        worker = drained.workers[f"ctr{gpu}"]
        assert (worker.device, worker.gpu_indexes) == (f"cuda:{gpu}", [gpu])
        mine = [w for w in drained.windows if w.worker_id == worker.id]
        assert mine, f"GPU {gpu}'s worker stored no window"
        for window in mine:
            assert (window.gpu_count, window.gpu_uuid) == (1, drained.node.gpus[gpu]["uuid"])
            assert window.gpu_energies == [{"index": gpu, "uuid": drained.node.gpus[gpu]["uuid"],
                                            "kwh": pytest.approx(window.gpu_energy_kwh, rel=1e-9, abs=1e-15)}]


def test_attributed_cpu_and_ram_add_up_to_what_the_host_drew_a_group_window_counting_once(drained):
    windows = drained.windows
    assert_host_counted_once(drained.node, windows)
    # What was tested: the group's windows overlapped the one-GPU workers' (a group window would have counted
    # four times had it been one window per GPU), under a host power that changed.
    group_windows = [w for w in windows if w.worker_id == "gpu0-3@ctrg"]
    timeline = "; ".join(f"{w.worker_id} {w.phase} {w.started_at:%H:%M:%S.%f}-{w.ended_at:%H:%M:%S.%f}"
                         f" k={w.max_concurrent_windows}" for w in windows)
    assert max(w.max_concurrent_windows for w in group_windows) >= 2, timeline
    assert len(drained.node.data["segments"]) >= 3


def test_a_worker_whose_gpu_a_live_group_holds_is_refused_naming_it(drained):
    refused = drained.refused
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "GPU 2 of this host is held by worker gpu0-3@ctrg" in lines[0], refused.stderr
    assert "ctrx" not in {w.hostname for w in drained.workers.values()}  # it registered nothing


def test_a_four_gpu_job_runs_only_on_the_group_worker_and_the_group_takes_no_one_gpu_job(drained):
    by_job: dict[int, set[str]] = {}
    for window in drained.windows:
        by_job.setdefault(window.job_id, set()).add(window.worker_id)
    assert sorted(drained.jobs.values()) == [1] * 8 + [4] * 2
    for job, gpus in drained.jobs.items():
        assert by_job.get(job), f"job {job} stored no window"
        if gpus == 4:
            assert by_job[job] == {"gpu0-3@ctrg"}, (job, by_job[job])
        else:
            assert "gpu0-3@ctrg" not in by_job[job], (job, by_job[job])
