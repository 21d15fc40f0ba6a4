"""One worker per GPU on a host (issue 21): a worker whose GPUs overlap a live worker's is refused, naming it.

Registration (worker.process.runtime.WorkerRuntime.register) on real SQLite and Postgres; the real process start
that is refused is in tests/distributed/test_device_groups.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from db.clock import seconds_ago
from db.models import Worker
from db.session import session_factory
from worker.process.runtime import GpusHeld, WorkerRuntime

TWIN_WINDOW_S = 30.0
WINDOWS = {"twin_window_s": TWIN_WINDOW_S, "gpu_window_s": TWIN_WINDOW_S}  # as `wattsweep worker` registers


def runtime(sessions, name: str, gpu_ids: list[int] | None, host_id: str = "boot:kernel-1") -> WorkerRuntime:
    return WorkerRuntime(worker_id=name, device="cuda:0" if gpu_ids else "cpu", hardware_class="h100",
                         sessions=sessions, gpu_ids=gpu_ids, host_id=host_id, hostname=name.split("@")[1],
                         baseline_window_s=0.0)


def register(sessions, name: str, gpu_ids: list[int] | None, host_id: str = "boot:kernel-1") -> WorkerRuntime:
    worker = runtime(sessions, name, gpu_ids, host_id)
    assert worker.register(gpus=[{"index": i} for i in gpu_ids or []], **WINDOWS)
    return worker


def test_a_worker_whose_gpus_a_live_worker_on_the_host_holds_is_refused_naming_it(database_url):
    sessions = session_factory(database_url)
    single = register(sessions, "gpu1@ctr1", [1])
    with pytest.raises(GpusHeld, match=r"GPU 1 of this host is held by worker gpu1@ctr1 \(heartbeat \d+ s ago\)"):
        runtime(sessions, "gpu0-3@ctrg", [0, 1, 2, 3]).register(**WINDOWS)
    with pytest.raises(GpusHeld, match="held by worker gpu1@ctr1"):  # single GPUs too
        runtime(sessions, "gpu1@other-name", [1]).register(**WINDOWS)
    with sessions() as session:  # the refused ones wrote nothing
        assert session.scalars(select(Worker.id)).all() == ["gpu1@ctr1"]
        assert session.get(Worker, "gpu1@ctr1").gpu_indexes == [1]

    register(sessions, "gpu0-3@ctr9", [0, 1, 2, 3], host_id="boot:kernel-2")  # another host's GPU 1
    register(sessions, "gpus4.6@ctrg", [4, 6])  # other GPUs of this host
    register(sessions, "cpu7@ctrc", None)  # a CPU worker holds no GPU
    assert single.register(**WINDOWS)  # never refused for its own GPUs
    with pytest.raises(GpusHeld, match="held by worker gpus4.6@ctrg"):
        runtime(sessions, "gpu5-6@ctrx", [5, 6]).register(**WINDOWS)


def test_a_gpu_is_free_again_once_its_worker_exits_or_stops_beating(database_url):
    from db.queue.live import unregister_worker

    sessions = session_factory(database_url)
    clean = register(sessions, "gpu0-3@ctrg", [0, 1, 2, 3])
    with sessions.begin() as session:
        unregister_worker(session, worker_id=clean.worker_id, token=clean.token)  # a clean exit
    register(sessions, "gpu2@ctr2", [2])
    with sessions.begin() as session:  # killed: no heartbeat for longer than the window
        session.execute(update(Worker).where(Worker.id == "gpu2@ctr2")
                        .values(heartbeat_at=seconds_ago(2 * TWIN_WINDOW_S)))
    register(sessions, "gpu2-3@ctrh", [2, 3])
    with pytest.raises(GpusHeld, match="held by worker gpu2-3@ctrh"):
        runtime(sessions, "gpu3@ctr3", [3]).register(**WINDOWS)
    local = runtime(sessions, "local1@ctr3", [3])  # local mode (no windows): one process, no check
    assert local.register()
