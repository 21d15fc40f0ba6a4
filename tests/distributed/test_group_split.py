"""A group worker that goes on as one-GPU workers once its work is done (`--split-when-drained`, issue 21).

Real Postgres, Redis, Celery and `wattsweep worker` processes on the simulated GPU node (tests/simnode): one
command, `wattsweep worker --gpus 0,1 --split-when-drained`, started before the sweep is submitted. The sweep has
one model declared `gpus: 2` and three of one GPU. The group runs the 2-GPU job (the one-GPU jobs wait: no other
worker), then, with nothing left for 2 GPUs while one-GPU jobs wait, stops, frees its GPUs, and the same command
goes on as gpu0@ctrs and gpu1@ctrs, which drain the rest. SIGTERM to the command then ends every process it started.
"""

from __future__ import annotations

import signal

import psutil
import pytest
from sqlalchemy import select

from db.models import Job, Measurement, Worker
from db.queue.live import RELEASED
from tests.conftest import POSTGRES_ADMIN_URL
from tests.distributed.conftest import (
    REDIS_URL,
    Cluster,
    free_redis_db,
    sweep_yaml,
    tiny_bert_dir,  # noqa: F401 - the fixture, by name
)
from tests.helpers import spawn_on_node
from tests.scratch_db import scratch_database
from tests.simnode import SimNode

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

HARDWARE_CLASS = "one"
GROUP = "gpu0-1@ctrs"
SINGLES = {"gpu0@ctrs": [0], "gpu1@ctrs": [1]}


def test_the_group_runs_its_job_then_its_gpus_go_on_as_one_gpu_workers_and_sigterm_ends_them_all(
        tmp_path, tiny_bert_dir):  # noqa: F811
    with free_redis_db() as number, scratch_database(POSTGRES_ADMIN_URL, "wattsweep_test") as url, \
            SimNode(tmp_path / "node", gpus=2, nvml_update_s=0.005) as node:
        cluster = Cluster(url, f"{REDIS_URL}/{number}", tmp_path)
        cluster.env = node.env(cluster.env)
        try:
            supervisor = spawn_on_node(cluster, node, "split", "worker", "--gpus", "0,1", "--split-when-drained",
                                       "--queue", HARDWARE_CLASS, hostname="ctrs")
            process = supervisor.process
            supervisor.wait_ready(timeout_s=300)

            models = cluster.model_copies(tiny_bert_dir, 4)
            text = sweep_yaml("split", models, queries=20, repetitions=1) + f"model_gpus:\n  {models[3]}: 2\n"
            (tmp_path / "split.yaml").write_text(text)
            submitted = cluster.wattsweep("submit", "split.yaml", "--hardware-class", HARDWARE_CLASS)
            assert submitted.returncode == 0, submitted.stderr
            cluster.wait_for(cluster.finished, "the sweep to finish", timeout_s=400, logs=[supervisor])

            with cluster.sessions() as session:
                jobs = dict(session.execute(select(Job.id, Job.gpus)).all())
                statuses = set(session.scalars(select(Job.status)))
                windows = session.scalars(select(Measurement).order_by(Measurement.started_at)).all()
            assert statuses == {"done"}, statuses
            by_job: dict[int, set[str]] = {}
            for window in windows:
                by_job.setdefault(window.job_id, set()).add(window.worker_id)
            assert sorted(jobs.values()) == [1, 1, 1, 2]
            for job, gpus in jobs.items():
                assert by_job.get(job) == {GROUP} if gpus == 2 else by_job.get(job, set()) <= set(SINGLES), \
                    (job, gpus, by_job.get(job))
            assert GROUP in set().union(*by_job.values()) and set().union(*by_job.values()) & set(SINGLES), by_job
            # The group stopped before its GPUs were metered again: no GPU by two workers at once.
            group_end = max(w.ended_at for w in windows if w.worker_id == GROUP)
            assert group_end <= min(w.started_at for w in windows if w.worker_id != GROUP)
            for window in windows:
                expected = [0, 1] if window.worker_id == GROUP else SINGLES[window.worker_id]
                assert [g["index"] for g in window.gpu_energies] == expected, window.worker_id

            descendants = psutil.Process(process.pid).children(recursive=True)
            assert len([p for p in descendants if "--gpu" in p.cmdline()]) == 2, [p.cmdline() for p in descendants]
            with cluster.sessions() as session:
                rows = {w.id: w for w in session.scalars(select(Worker))}
            assert rows[GROUP].token == RELEASED and rows[GROUP].gpu_indexes == [0, 1]  # it unregistered
            assert {w: rows[w].gpu_indexes for w in SINGLES} == SINGLES
            assert all(rows[w].token != RELEASED for w in SINGLES)

            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0, supervisor.log()[-3000:]
            gone, alive = psutil.wait_procs(descendants, timeout=10)
            assert not alive, [p.cmdline() for p in alive]
            with cluster.sessions() as session:
                assert {session.get(Worker, w).token for w in SINGLES} == {RELEASED}  # each exited cleanly
        finally:
            cluster.close()
