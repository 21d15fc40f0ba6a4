"""`wattsweep slurm --submit` against a real slurmctld/slurmd: workers drain a sweep, survive scancel, pin GPUs.

Real Postgres, Redis, Celery and `wattsweep worker` processes, started by
Slurm through the generated batch script; only the GPUs are fakes (device
files for GRES, the simulated GPU node's NVML for what a worker reads about its GPU).
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from db.models import Job, Measurement, Run, Worker
from tests.distributed.conftest import sweep_yaml
from tests.simnode import SimNode
from tests.slurm.daemons import KILL_WAIT_S

pytestmark = pytest.mark.slurm


def submit_workers(cluster, *options: str) -> str:
    result = cluster.wattsweep("slurm", "--queue", cluster.queue, "--time", "15", "--grace", "60", *options,
                               "--submit")
    assert result.returncode == 0, result.stderr
    match = re.search(r"submitted Slurm job (\d+)", result.stdout)
    assert match, result.stdout
    return match.group(1)


def stored_runs(cluster, sweep_id: int) -> dict[int, tuple[str, int]]:
    """Done run id -> (worker id, query window id)."""
    with cluster.sessions() as session:
        rows = session.execute(select(Run.id, Run.worker_id, Measurement.id)
                               .join(Job, Job.id == Run.job_id)
                               .join(Measurement, (Measurement.run_id == Run.id) & (Measurement.phase == "query"))
                               .where(Job.sweep_id == sweep_id, Run.status == "done"))
        return {run_id: (worker_id, window_id) for run_id, worker_id, window_id in rows}


def wait_gone(slurm, job_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while job_id in slurm.jobs():
        assert time.monotonic() < deadline, f"Slurm job {job_id} still {slurm.jobs()}: {slurm.logs()}"
        time.sleep(0.5)


def slurm_output(cluster, job_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in cluster.folder.glob(f"*-{job_id}.out"))


def test_sbatch_cpu_workers_drain_a_sweep_and_end_their_allocation(slurm_cluster, slurm, tiny_bert_dir):
    cluster = slurm_cluster
    name = "slurm-drain"
    sweep_id = cluster.submit(sweep_yaml(name, cluster.model_copies(tiny_bert_dir, 3), repetitions=2))
    job_id = submit_workers(cluster, "--device", "cpu", "--workers-per-node", "2", "--until-done", name)

    cluster.wait_for(cluster.finished, "the sweep to drain through Slurm", timeout_s=240)
    cluster.assert_every_run_stored_once(sweep_id)
    stored = stored_runs(cluster, sweep_id)
    assert len(stored) == 6 and cluster.job_statuses() == {"done": 3}
    pattern = re.compile(rf"^cpu[01]-slurm{job_id}\.0@{slurm.node}$")  # started by this allocation's srun tasks
    assert all(pattern.match(worker) for worker, _ in stored.values()), stored
    # --until-done: once the sweep has nothing left, the script stops its workers and the allocation ends.
    wait_gone(slurm, job_id, timeout_s=90)
    assert f"sweep {name} finished: asking the workers to hand back" in slurm_output(cluster, job_id)
    assert slurm.job_state(job_id) == "COMPLETED"  # the workers exited cleanly on SIGTERM, not killed


def test_scancel_mid_run_loses_no_stored_run_and_a_second_allocation_finishes(slurm_cluster, slurm, tiny_bert_dir):
    cluster = slurm_cluster
    cluster.spawn("reconcile", "--watch", "--interval", "1", log_name="reconcile")  # the head node's reconciler
    sweep_id = cluster.submit(sweep_yaml("slurm-cancel", cluster.model_copies(tiny_bert_dir, 3),
                                         queries=200, repetitions=3))
    first = submit_workers(cluster, "--device", "cpu", "--workers-per-node", "1")
    cluster.wait_for(lambda: len(stored_runs(cluster, sweep_id)) >= 2, "runs stored by the first allocation",
                     timeout_s=240)

    slurm.scancel(first)
    wait_gone(slurm, first, timeout_s=KILL_WAIT_S + 60)
    before = stored_runs(cluster, sweep_id)
    assert 2 <= len(before) < 9, "scancel came after the sweep had finished: nothing was cut"
    assert not cluster.finished()
    assert "SIGTERM: asking the workers to hand back" in slurm_output(cluster, first)
    cluster.assert_every_run_stored_once(sweep_id)

    second = submit_workers(cluster, "--device", "cpu", "--workers-per-node", "1")
    cluster.wait_for(cluster.finished, "the second allocation to finish the sweep", timeout_s=240)
    after = stored_runs(cluster, sweep_id)
    assert len(after) == 9 and cluster.job_statuses() == {"done": 3}
    assert {run: after[run] for run in before} == before  # what was stored stays as it was
    cluster.assert_every_run_stored_once(sweep_id)
    by = {worker.split("-slurm")[1].split(".")[0] for worker, _ in after.values()}
    assert by == {first, second}
    with cluster.sessions() as session:
        duplicates = session.scalar(select(func.count()).select_from(
            select(Measurement.run_id).where(Measurement.phase == "query").group_by(Measurement.run_id)
            .having(func.count() > 1).subquery()))
    assert duplicates == 0
    slurm.scancel(second)


def test_gres_allocation_pins_each_srun_task_to_the_gpu_slurm_gave_it(slurm_cluster, slurm, tmp_path):
    if not SimNode.available()[0]:
        pytest.skip(SimNode.available()[1])
    cluster = slurm_cluster
    hold = cluster.folder / "hold.sh"
    hold.write_text("#!/bin/bash\nsleep 600\n")
    holder = slurm.sbatch(hold, "--gres=gpu:1", "--ntasks=1", f"--output={cluster.folder / 'hold.out'}")
    deadline = time.monotonic() + 30
    while slurm.job_state(holder) != "RUNNING":  # GPU 0 is taken: ours must get 1 and 2, not 0 and 1
        assert time.monotonic() < deadline, slurm.logs()
        time.sleep(0.2)
    with SimNode(tmp_path / "node", gpus=slurm.gpus) as node:  # its NVML says what each task's GPU is
        cluster.env = node.env(cluster.env)
        job_id = submit_workers(cluster, "--gpus-per-node", "2")

        def registered() -> list[Worker]:
            with cluster.sessions() as session:
                return session.scalars(select(Worker).order_by(Worker.id)).all()

        # Registered, and the pinned device recorded (a worker writes it just after its row).
        cluster.wait_for(lambda: len(ws := registered()) == 2 and all(w.device != "cpu" for w in ws),
                         "two GPU workers to register", timeout_s=180)
        workers = registered()
        slurm.scancel(job_id)
        slurm.scancel(holder)
        wait_gone(slurm, job_id, timeout_s=KILL_WAIT_S + 60)
    # Slurm gave the job GPUs 1 and 2 and bound one to each task (CUDA_VISIBLE_DEVICES=1, then 2); each worker
    # took its task's one entry: physical GPU 1 + i, and metered that GPU through NVML (PCI order, which differs
    # from CUDA's default order on this node).
    assert [(w.id, w.device) for w in workers] == [
        (f"gpu{i}-slurm{job_id}.0@{slurm.node}", f"cuda:{1 + i}") for i in range(2)]
    assert [w.inventory["gpu"]["uuid"] for w in workers] == [node.gpus[1]["uuid"], node.gpus[2]["uuid"]]


STAND_IN = """#!/bin/bash
# Stands in for `wattsweep worker` (called with its arguments, the name last): logs the signal it gets, exits 0.
name="${@: -1}"
echo "started $name"
trap 'echo "SIGTERM reached $name"; exit 0' TERM
while true; do sleep 0.2; done
"""


def test_the_time_limit_signal_reaches_every_worker_before_the_limit(slurm_cluster, slurm):
    # The batch script's own mechanics, with a stand-in for the worker (the real ones take a minute to start on
    # a busy machine): Slurm's B:TERM reaches the script, which passes it to every task; the job then ends
    # COMPLETED before its limit, not TIMEOUT. What a real worker does with the signal the tests above show.
    cluster = slurm_cluster
    stand_in = cluster.folder / "stand-in-worker"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    result = cluster.wattsweep("slurm", "--queue", cluster.queue, "--device", "cpu", "--workers-per-node", "2",
                               "--time", "2", "--grace", "100", "--wattsweep", str(stand_in), "--submit")
    assert result.returncode == 0, result.stderr
    job_id = re.search(r"submitted Slurm job (\d+)", result.stdout).group(1)
    started = time.monotonic()
    wait_gone(slurm, job_id, timeout_s=110)  # Slurm signals within 60 s of the due time (20 s in)
    assert time.monotonic() - started < 120 and slurm.job_state(job_id) == "COMPLETED"
    output = slurm_output(cluster, job_id)
    assert "wattsweep: SIGTERM: asking the workers to hand back their units" in output
    for task in (0, 1):
        name = f"cpu{task}-slurm{job_id}.0@{slurm.node}"
        assert f"started {name}" in output and f"SIGTERM reached {name}" in output


PROBE = """#!/bin/bash
# Stands in for `wattsweep worker`: records what its srun task was given, then exits.
echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES args=$*" > "$(dirname "$0")/task$SLURM_LOCALID"
"""


def test_gpu_groups_are_disjoint_tasks_each_given_its_gpus_by_slurm(slurm_cluster, slurm):
    # --gpus-per-node 8 --gpus-per-worker 4: two srun tasks, and Slurm (not the script) gives each its four GPUs.
    assert slurm.gpus == 8
    cluster = slurm_cluster
    probe = cluster.folder / "probe" / "worker"
    probe.parent.mkdir()
    probe.write_text(PROBE)
    probe.chmod(0o755)
    job_id = submit_workers(cluster, "--gpus-per-node", "8", "--gpus-per-worker", "4", "--wattsweep", str(probe))
    wait_gone(slurm, job_id, timeout_s=60)
    assert slurm.job_state(job_id) == "COMPLETED", slurm_output(cluster, job_id)
    records = {path.name: path.read_text().split() for path in probe.parent.glob("task*")}
    assert sorted(records) == ["task0", "task1"], slurm_output(cluster, job_id)
    groups = [records[task][0].removeprefix("CUDA_VISIBLE_DEVICES=").split(",") for task in ("task0", "task1")]
    assert all(len(group) == 4 for group in groups), groups
    assert sorted(int(gpu) for group in groups for gpu in group) == list(range(8))  # disjoint, covering 0-7
    for task in ("task0", "task1"):  # each worker takes all four GPUs of its own task
        assert records[task][1:5] == ["args=worker", "--queue", cluster.queue, "--gpus"]
        assert records[task][5] == "0,1,2,3"
