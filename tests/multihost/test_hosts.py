"""Several worker hosts with real network isolation: drain, a host cut off mid-run, attribution per host.

Real Postgres, Redis, Celery and `wattsweep worker` processes; the hosts are
network namespaces on the test's own subnet, each reaching the head node's
services only through its veth address.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select, text

from db.models import Job, Measurement, Run
from tests.distributed.conftest import sweep_yaml

pytestmark = pytest.mark.multihost

PROBE = """
import socket, sys
for port in (5432, 6379):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print("reached", port)
    except OSError:
        pass
"""


def query_windows(cluster, sweep_id: int) -> list[Measurement]:
    with cluster.sessions() as session:
        return session.scalars(select(Measurement).join(Job, Job.id == Measurement.job_id)
                               .where(Job.sweep_id == sweep_id, Measurement.phase == "query")
                               .order_by(Measurement.started_at)).all()


def overlap(a: Measurement, b: Measurement) -> bool:
    return a.started_at < b.ended_at and b.started_at < a.ended_at


def test_a_sweep_drains_across_hosts_and_attribution_keeps_them_apart(hosts, tiny_bert_dir):
    cluster = hosts
    # The machine's own Postgres and Redis (127.0.0.1) are out of a host's reach: only the head address works.
    probe = subprocess.run(cluster.network.run_in(0, [sys.executable, "-c", PROBE]), capture_output=True, text=True,
                           timeout=30)
    assert probe.returncode == 0 and "reached" not in probe.stdout, probe.stdout + probe.stderr
    # Host 0 runs two workers (their windows share its CPU and RAM), host 1 one.
    workers = [cluster.start_worker_on(0, "a"), cluster.start_worker_on(0, "b"), cluster.start_worker_on(1, "c")]
    for worker in workers:
        worker.wait_ready(timeout_s=180)
    # Jobs long enough that host 0's two workers measure at the same time on a quiet machine too: a worker's
    # idle baseline first waits up to WATTSWEEP_BASELINE_NEIGHBOUR_WAIT_S (2 s) for its busy neighbour, and a job
    # must outlast that wait (600 queries a run, 0.5 s windows here, could not: the neighbour's 3 runs ended first).
    sweep_id = cluster.submit(sweep_yaml("hosts", cluster.model_copies(tiny_bert_dir, 4), queries=2400,
                                         repetitions=3))
    cluster.wait_for(cluster.finished, "the sweep to drain across the hosts", timeout_s=240, logs=workers)
    cluster.assert_every_run_stored_once(sweep_id)
    assert cluster.job_statuses() == {"done": 4}

    windows = query_windows(cluster, sweep_id)
    host_of = {"a@host0": cluster.host_id(0), "b@host0": cluster.host_id(0), "c@host1": cluster.host_id(1)}
    assert {w.worker_id for w in windows} == set(host_of)  # every worker on both hosts took part
    assert all(w.host_id == host_of[w.worker_id] for w in windows)
    lone = [w for w in windows if w.host_id == cluster.host_id(1)]
    shared = [w for w in windows if w.host_id == cluster.host_id(0)]
    # Host 1's windows overlap host 0's, yet each is alone on its host: its CPU and RAM are its own.
    assert any(overlap(w, other) for w in lone for other in shared), "no cross-host overlap: nothing was tested"
    for w in lone:
        assert w.max_concurrent_windows == 1
        assert w.cpu_energy_attributed_kwh == pytest.approx(w.cpu_energy_kwh, rel=1e-9)
        assert w.ram_energy_attributed_kwh == pytest.approx(w.ram_energy_kwh, rel=1e-9)
    # On host 0 the two workers' overlapping windows do share (the control: attribution is on at all).
    assert any(a.worker_id != b.worker_id and overlap(a, b) for a in shared for b in shared)
    assert any(w.max_concurrent_windows == 2 and w.cpu_energy_attributed_kwh < 0.99 * w.cpu_energy_kwh
               for w in shared)
    # Every connection the workers opened came from their hosts' veth addresses.
    with cluster.sessions() as session:
        clients = set(session.scalars(text("SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
                                           "WHERE datname = current_database() AND client_addr IS NOT NULL")))
    assert set(cluster.network.addresses) <= clients <= {*cluster.network.addresses, cluster.network.head}


def test_a_host_cut_off_mid_run_has_its_unit_redone_elsewhere_and_nothing_is_stored_twice(hosts, tiny_bert_dir):
    cluster = hosts
    cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")  # on the head node
    near, far = cluster.start_worker_on(0, "near"), cluster.start_worker_on(1, "far")
    for worker in (near, far):
        worker.wait_ready(timeout_s=180)
    sweep_id = cluster.submit(sweep_yaml("cut", cluster.model_copies(tiny_bert_dir, 2), queries=200, repetitions=4))

    def stored_by() -> dict[int, str]:
        """Done run id -> the worker that stored it."""
        with cluster.sessions() as session:
            return dict(session.execute(select(Run.id, Run.worker_id).join(Job).where(
                Job.sweep_id == sweep_id, Run.status == "done")).all())

    def far_at_work() -> int | None:
        """A job host 1 holds with runs still to do, once host 1 has stored a run: it is inside the next one."""
        with cluster.sessions() as session:
            job_id = session.scalar(select(Job.id).where(Job.sweep_id == sweep_id, Job.status == "running",
                                                         Job.lease_worker_id == far.name))
            left = session.scalar(select(func.count()).select_from(Run).where(Run.job_id == job_id,
                                                                              Run.status != "done"))
        return job_id if job_id is not None and left and far.name in stored_by().values() else None

    cluster.wait_for(lambda: far_at_work() is not None, "host 1 to be inside a run", timeout_s=180,
                     logs=[near, far])
    job_id = far_at_work()
    cluster.network.cut(1)
    cut_at = time.monotonic()
    assert job_id is not None and len(stored_by()) < 8, "the sweep finished before the cut"

    # Host 1's lease goes stale; the reconciler sends its work again and host 0 redoes what was not stored.
    cluster.wait_for(cluster.finished, "host 0 to finish the sweep", timeout_s=240, logs=[near, far])
    assert time.monotonic() - cut_at > 4  # not before the lease (4 s) had expired
    cluster.assert_every_run_stored_once(sweep_id)
    done = stored_by()
    assert len(done) == 8 and cluster.job_statuses() == {"done": 2}
    with cluster.sessions() as session:
        in_far_job = session.scalars(select(Run.worker_id).where(Run.job_id == job_id)).all()
    assert far.name in in_far_job and near.name in in_far_job  # host 0 redid what host 1 was running

    # The link comes back: host 1's worker wakes up with a finished run and a lease it no longer holds.
    cluster.network.restore(1)
    cluster.wait_for(lambda: "lease lost" in far.log(), "host 1 to find its lease gone", timeout_s=120,
                     logs=[far])
    cluster.assert_every_run_stored_once(sweep_id)
    assert stored_by() == done  # nothing stored twice, nothing replaced
    with cluster.sessions() as session:
        windows = session.scalar(select(func.count()).select_from(Measurement).join(Job).where(
            Job.sweep_id == sweep_id, Measurement.phase == "query"))
    assert windows == 8
    assert far.process.poll() is None  # host 1's worker survived the partition and takes work again


def test_a_host_has_only_its_veth_address_and_no_route_out(network):
    def inside(*command: str) -> str:
        return subprocess.run(network.run_in(0, list(command)), capture_output=True, text=True, timeout=30).stdout

    addresses = sorted(line.split()[3].split("/")[0] for line in inside("ip", "-o", "-4", "addr").splitlines())
    assert addresses == sorted(["127.0.0.1", network.addresses[0]])
    routes = [line.split()[0] for line in inside("ip", "-4", "route").splitlines()]
    assert routes == [network.cidr]  # no default route: traffic stays on the test subnet
