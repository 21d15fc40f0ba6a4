"""The power_limit_w axis on real `wattsweep worker --gpu 5` processes of the simulated node (issue 21, item 7).

Real Postgres, Redis, Celery and CodeCarbon; only NVML and RAPL are fakes (tests/simnode). The fake NVML keeps
each GPU's limit within its range, refuses without the permission, lets the GPU's power follow the limit (GPU 5, an
H100 allowed 200-700 W, draws 600 W uncapped here), and keeps the limits in a file of the node, so that a limit
outlives the worker that set it, as on a real GPU. Each test uses its own queue.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest
from sqlalchemy import select

from db.clock import seconds_ago
from db.models import Job, Measurement, PowerLimitSet, Worker
from tests.conftest import POSTGRES_ADMIN_URL
from tests.distributed.conftest import REDIS_URL, Cluster, WorkerProcess, free_redis_db, tiny_bert_dir  # noqa: F401
from tests.helpers import spawn_on_node
from tests.scratch_db import scratch_database
from tests.simnode import SimNode
from tests.simnode.fakelib import simnode_profile

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

GPU, FOUND_W, DRAWS_W = 5, 700.0, 600.0  # an H100 of the node: its limit as found, and what it draws uncapped


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("power-limits")
    with free_redis_db() as number, scratch_database(POSTGRES_ADMIN_URL, "wattsweep_test") as url, \
            SimNode(folder / "node", gpus=8, nvml_update_s=0.005, gpu_w=[DRAWS_W] * 8) as node:
        cluster = Cluster(url, f"{REDIS_URL}/{number}", folder)
        cluster.env = node.env(cluster.env)
        try:
            yield cluster, node
        finally:
            cluster.close()


def start_worker(cluster: Cluster, node: SimNode, queue: str, name: str) -> WorkerProcess:
    worker = spawn_on_node(cluster, node, name, "worker", "--gpu", str(GPU), "--queue", queue, hostname="ctr5")
    worker.wait_ready(timeout_s=300)
    return worker


def submit(cluster: Cluster, model: str, limits, *, queries: int = 4, repetitions: int = 1) -> tuple[str, int]:
    """A new queue and a fill-mask sweep on it with the power_limit_w axis `limits`; (queue, sweep id)."""
    cluster.queue = f"h100-{uuid.uuid4().hex[:8]}"
    return cluster.queue, cluster.submit(
        f"name: limits-{cluster.queue}\n"
        f"defaults: {{queries: {queries}, repetitions: {repetitions}, warmup: 0, batch_size: 1}}\n"
        "carbon: {grid_intensity_g_per_kwh: 100}\n"
        f"tasks:\n  fill-mask:\n    models: [path:{model}]\n    datasets: [builtin:texts]\n"
        f"    params: {{power_limit_w: {limits}}}\n")


def drained(cluster: Cluster, sweep_id: int):
    """A condition: no job of the sweep is left to run (the other tests' sweeps may still hold jobs)."""
    def done() -> bool:
        with cluster.sessions() as session:
            statuses = set(session.scalars(select(Job.status).where(Job.sweep_id == sweep_id)))
        return not statuses & {"queued", "running"}

    return done


def limit_rows(cluster: Cluster) -> list[PowerLimitSet]:
    with cluster.sessions() as session:
        return list(session.scalars(select(PowerLimitSet).order_by(PowerLimitSet.id)))


def wait_until(condition, what: str, worker: WorkerProcess, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{worker.log()[-3000:]}"
        time.sleep(0.1)


def id_free(cluster: Cluster, worker_id: str) -> bool:
    """Whether a new process may take `worker_id`: its last heartbeat is older than two intervals (the twin window
    of db.queue.live.register_worker, WATTSWEEP_HEARTBEAT_INTERVAL_S 0.5 s here), by the database's clock."""
    with cluster.sessions() as session:
        return session.scalar(select(Worker.id).where(Worker.id == worker_id, Worker.heartbeat_at < seconds_ago(1.0))
                              ) is not None


def stop(worker: WorkerProcess) -> None:
    worker.signal(signal.SIGTERM)
    assert worker.wait(120) == 0, worker.log()[-3000:]


def test_each_cell_sets_reads_back_stores_and_restores_its_limit(node_cluster, tiny_bert_dir):  # noqa: F811
    cluster, node = node_cluster
    queue, sweep_id = submit(cluster, str(tiny_bert_dir), "[300, 450, 900]", queries=40, repetitions=2)
    worker = start_worker(cluster, node, queue, "cells")
    cluster.wait_for(drained(cluster, sweep_id), "the sweep", timeout_s=300, logs=[worker])
    with cluster.sessions() as session:
        jobs = {job.power_limit_w: job for job in session.scalars(select(Job).where(Job.sweep_id == sweep_id))}
        windows = session.scalars(select(Measurement).where(Measurement.job_id.in_([j.id for j in jobs.values()])))
        by_limit: dict[float, list[Measurement]] = {}
        for window in windows:
            by_limit.setdefault(jobs_limit(jobs, window.job_id), []).append(window)
    assert {limit: job.status for limit, job in jobs.items()} == {300.0: "done", 450.0: "done", 900.0: "failed"}
    assert jobs[900.0].last_error == "power_limit_w 900 W is outside GPU 5 (NVIDIA H100 80GB HBM3)'s range 200-700 W"
    for limit in (300.0, 450.0):
        assert sorted(w.phase for w in by_limit[limit]) == ["load", "query", "query"]
        for window in by_limit[limit]:  # set, read back, and in force at both ends of every window
            assert (window.power_limit_set_w, window.power_limit_read_w) == (limit, limit)
            assert (window.gpu_power_limit_start_w, window.gpu_power_limit_end_w) == (limit, limit)
            if window.phase == "query":  # the GPU draws what the limit lets it (600 W uncapped)
                assert window.gpu_power_w == pytest.approx(limit, rel=0.1), (limit, window.gpu_power_w)
    assert 900.0 not in by_limit  # refused before any window
    assert node.power_limit_w(GPU) == FOUND_W  # restored after the cells
    sets = [w for _, w in node.power_limit_sets(GPU)]
    assert set(sets) == {300.0, 450.0, FOUND_W} and sets[-1] == FOUND_W
    restored_between = [after == FOUND_W for before, after in zip(sets, sets[1:], strict=False) if before != FOUND_W]
    assert all(restored_between), sets  # after each cell
    assert limit_rows(cluster) and all(r.restored_at is not None for r in limit_rows(cluster))
    report = cluster.wattsweep("report", str(sweep_id))
    assert report.returncode == 0, report.stderr
    assert "Power limits" in report.stdout and "300" in report.stdout and "450" in report.stdout, report.stdout
    as_json = cluster.wattsweep("report", str(sweep_id), "--format", "json")
    [group] = json.loads(as_json.stdout)["power_limits"]
    assert [(p["power_limit_w"], p["power_limit_read_w"]) for p in group["points"]] == [(300.0, 300.0), (450.0, 450.0)]
    assert all(p["wh_per_query"] > 0 and p["latency_p95_s"] > 0 for p in group["points"])
    html = cluster.wattsweep("report", str(sweep_id), "--format", "html", "--out", "report.html")
    assert html.returncode == 0 and "against the GPU power limit" in (cluster.folder / "report.html").read_text()
    stop(worker)


def jobs_limit(jobs: dict[float, Job], job_id: int) -> float:
    return next(limit for limit, job in jobs.items() if job.id == job_id)


def test_a_sigterm_restores_the_limit(node_cluster, tiny_bert_dir):  # noqa: F811
    cluster, node = node_cluster
    queue, _ = submit(cluster, str(tiny_bert_dir), 300, queries=200, repetitions=20)
    worker = start_worker(cluster, node, queue, "sigterm")
    wait_until(lambda: node.power_limit_w(GPU) == 300.0, "the cell's limit", worker)
    stop(worker)  # warm shutdown: the unit under way ends, the job is handed back, the limit goes back
    assert node.power_limit_w(GPU) == FOUND_W
    assert all(r.restored_at is not None for r in limit_rows(cluster))


def test_a_limit_left_by_a_sigkill_is_restored_at_the_next_start(node_cluster, tiny_bert_dir):  # noqa: F811
    cluster, node = node_cluster
    queue, _ = submit(cluster, str(tiny_bert_dir), 250, queries=200, repetitions=20)
    worker = start_worker(cluster, node, queue, "sigkill")
    wait_until(lambda: node.power_limit_w(GPU) == 250.0, "the cell's limit", worker)
    worker.signal(signal.SIGKILL)
    worker.wait(60)
    assert node.power_limit_w(GPU) == 250.0  # nobody put it back: the GPU keeps it
    [left] = [r for r in limit_rows(cluster) if r.restored_at is None]
    assert (left.gpu_uuid, left.previous_w, left.set_w) == (node.gpus[GPU]["uuid"], FOUND_W, 250.0)
    wait_until(lambda: id_free(cluster, "gpu5@ctr5"), "the killed worker's id to free itself", worker)
    idle_queue = f"idle-{uuid.uuid4().hex[:8]}"  # the next worker takes no work: its start alone restores
    restarted = start_worker(cluster, node, idle_queue, "restarted")
    assert node.power_limit_w(GPU) == FOUND_W
    assert all(r.restored_at is not None for r in limit_rows(cluster))
    assert "GPU 5: power limit put back to 700 W (250 W was set by" in restarted.log()
    stop(restarted)


def test_without_permission_the_cell_fails_with_one_line(node_cluster, tiny_bert_dir):  # noqa: F811
    cluster, node = node_cluster
    node.data["power_limit_permission"] = False  # a worker neither root nor SYS_ADMIN
    simnode_profile.save(str(node.profile_path), node.data)
    try:
        queue, sweep_id = submit(cluster, str(tiny_bert_dir), 300)
        worker = start_worker(cluster, node, queue, "no-permission")
        cluster.wait_for(drained(cluster, sweep_id), "the sweep", timeout_s=300, logs=[worker])
        stop(worker)
    finally:
        node.data["power_limit_permission"] = True
        simnode_profile.save(str(node.profile_path), node.data)
    with cluster.sessions() as session:
        job = session.scalars(select(Job).where(Job.sweep_id == sweep_id)).one()
    assert job.status == "failed" and "\n" not in job.last_error
    assert job.last_error.startswith("setting a GPU power limit needs root") and "SYS_ADMIN" in job.last_error
    assert node.power_limit_w(GPU) == FOUND_W
