"""Helpers that several test modules share, so that no test module imports another.

Builders of data live in tests/factories.py (a measured reading) and tests/results_data.py (finished sweeps with
chosen figures); this module holds the rest: running `wattsweep`, pieces of sweep files and CodeCarbon logs,
sweeps with workers and leases ready to claim, and starting a worker on the simulated GPU node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from db.models import Job, Worker
from db.queue.jobs import claim_job, pending_runs
from db.queue.leases import Lease
from db.queue.sweeps import NewJob, insert_sweep
from tests.factories import make_reading

if TYPE_CHECKING:
    from tests.distributed.conftest import WorkerProcess
    from tests.simnode import SimNode

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# `wattsweep` as a user runs it -------------------------------------------------------------------------------------


def wattsweep_env(database_url: str | None = None) -> dict[str, str]:
    """This process's environment for a `wattsweep` subprocess, offline, with its own database URL."""
    env = {k: v for k, v in os.environ.items() if k != "WATTSWEEP_DATABASE_URL"} | {"HF_HUB_OFFLINE": "1"}
    return env | ({"WATTSWEEP_DATABASE_URL": database_url} if database_url else {})


def wattsweep(*args, cwd, env_url=None, env=None):
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=cwd,
                          env=wattsweep_env(env_url) | (env or {}), capture_output=True, text=True, timeout=600)


def wattsweep_cli(url: str, *args: str):
    """The CLI in this process (typer's runner) on the database at `url`: for commands that start no worker."""
    from typer.testing import CliRunner

    from scheduler.cli import app  # imported here: most users of this module never run the CLI

    return CliRunner().invoke(app, [*args, "--database-url", url], catch_exceptions=False)


# Pieces of a small valid sweep file: HEAD + CARBON + TASKS + GOOD_TASK ----------------------------------------------

GOOD_TASK = "  fill-mask:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n"
TASKS = "tasks:\n"
HEAD = "name: bad\ndefaults: {queries: 2, repetitions: 1, warmup: 0}\n"
CARBON = "carbon: {grid_intensity_g_per_kwh: 100}\n"

# CodeCarbon 2.3's emissions.csv (the version the study used) ---------------------------------------------------------

# Its header: no utilisation or water columns.
V2_HEADER = ("timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
             "cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,"
             "cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,"
             "latitude,ram_total_size,tracking_mode,on_cloud,pue")


def v2_row(model: str, energy: str, task_name: str | None = None) -> str:
    row = (f"2023-10-12T15:22:11,{model},7c1e,12.5,{energy},0.0001,150.0,300.0,70.0,0.0002,0.001,0.0001,{energy},"
           "United States,USA,oregon,,,Linux-5.15,3.10.12,2.3.1,96,AMD EPYC 7R13,8,8 x NVIDIA A100-SXM4-80GB,"
           ",,1121.0,machine,N,1.0")
    return f"{task_name},{row}" if task_name else row


def import_codecarbon_v2(url: str, tmp_path) -> None:
    """`wattsweep import codecarbon` of two 2.3 query rows of one model and its task file (a load and a query
    phase), into the database at `url`."""
    emissions = tmp_path / "emissions.csv"
    emissions.write_text("\n".join([V2_HEADER, v2_row("bigscience/bloomz-560m", "0.0054"),
                                    v2_row("bigscience/bloomz-560m", "0.0056")]) + "\n")
    tasks = tmp_path / "emissions_base_x.csv"
    tasks.write_text("\n".join(["task_name," + V2_HEADER, v2_row("ignored", "0.02", "load model"),
                                v2_row("ignored", "0.006", "query model")]) + "\n")
    result = wattsweep_cli(url, "import", "codecarbon", str(emissions), str(tasks), "--task",
                           "text-classification", "--model", "hub:bigscience/bloomz-560m", "--queries", "1000")
    assert result.exit_code == 0, result.output


# Sweeps stored directly, with two workers' leases ---------------------------------------------------------------------

W1, W2 = Lease("w1@h", "token-1"), Lease("w2@h", "token-2")
_GRID_100_G = dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0)


def make_sweep(sessions, n_jobs=2, n_runs=2, max_attempts=2, mode="distributed", shards=None, exclusive=False,
               name="s", hostnames=("h", "h")):
    """A sweep of `n_jobs` fill-mask jobs of `n_runs` runs each, with W1 and W2 registered as workers; its id."""
    queries = sum(n for n, _ in shards) if shards else 4
    runs = [dict(dataset="builtin:texts", repetition=r, n_queries=queries, batch_size=1, warmup=0,
                 **({"shards": shards} if shards else {})) for r in range(n_runs)]
    with sessions.begin() as session:
        for lease, host in zip((W1, W2), hostnames, strict=True):
            if session.get(Worker, lease.worker_id) is None:
                session.add(Worker(id=lease.worker_id, hostname=host, device="cpu", hardware_class="cpu",
                                   inventory={}, token=lease.token))
        sweep = insert_sweep(
            session, name=name, spec={}, hardware_class="cpu", mode=mode, carbon=_GRID_100_G, exclusive=exclusive,
            jobs=[NewJob("fill-mask", f"tiny:m{i}", "cpu", {}, runs) for i in range(n_jobs)],
            max_attempts=max_attempts,
        )
        return sweep.id


def first_job_id(sessions, sweep_id):
    with sessions() as session:
        return session.scalar(select(func.min(Job.id)).where(Job.sweep_id == sweep_id))


def reading(energy_kwh=2e-6):
    return make_reading(energy_kwh)


def sweep_with_claimed_job(sessions, n_runs, workers=("w1@host",)):
    """A local sweep of one job whose `n_runs` runs the first of `workers` has claimed: (sweep, job, run ids)."""
    runs = [dict(dataset="builtin:texts", repetition=r, n_queries=10, batch_size=1, warmup=0) for r in range(n_runs)]
    with sessions.begin() as session:
        for worker_id in workers:
            session.add(Worker(id=worker_id, hostname="host", device="cpu", hardware_class="cpu", inventory={}))
        sweep = insert_sweep(session, name="q", spec={}, hardware_class="cpu", mode="local",
                             carbon=dict(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0),
                             jobs=[NewJob("fill-mask", "tiny:bert", "cpu", {}, runs)])
        sweep_id = sweep.id
    with sessions.begin() as session:
        job_id = session.scalar(select(Job.id).where(Job.sweep_id == sweep_id))
        job = claim_job(session, job_id=job_id, worker_id=workers[0], lease_timeout_s=60)
        return sweep_id, job.id, [r.id for r in pending_runs(session, job_id=job.id)]


# A real worker on the simulated GPU node ------------------------------------------------------------------------------


def start_on_node(cluster, node: SimNode, name: str, queue: str, *args: str) -> WorkerProcess:
    env = node.env(cluster.env) | {"CODECARBON_PUE": "1.5", "WATTSWEEP_MEASURE_POWER_SECS": "0"}
    return spawn_on_node(cluster, node, name, "worker", "--queue", queue, *args, env=env)


def spawn_on_node(cluster, node: SimNode, name: str, *args: str, hostname: str | None = None,
                  env: dict[str, str] | None = None) -> WorkerProcess:
    """`wattsweep ARGS` inside the node's namespaces (its own UTS namespace with `hostname`), in the cluster's
    folder, logged to NAME.log there and stopped with the cluster; `env`: the cluster's unless given."""
    from tests.distributed.conftest import WorkerProcess

    log_path = cluster.folder / f"{name}.log"
    argv = node.wrap([*cluster_python(), *args], hostname=hostname)
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=cluster.folder, env=cluster.env if env is None else env, stdout=log,
                                   stderr=subprocess.STDOUT)
    cluster.processes.append(process)
    return WorkerProcess(name, process, log_path)


def cluster_python() -> list[str]:
    return [sys.executable, "-m", "scheduler"]
