"""`wattsweep slurm`: write (and with --submit, sbatch) a batch script that runs workers on Slurm nodes.

The script itself is `scheduler.slurm.render`, a pure function; this module
reads the options, checks what only the submitting machine can tell (are the
URLs set, is sbatch there), and writes, prints or submits the script.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.options import BrokerOpt, DatabaseOpt, console, errors, fail, open_out

app = typer.Typer()

SBATCH_TIMEOUT_S = 60


def default_wattsweep() -> str:
    """How the compute nodes run this same installation: the `wattsweep` next to this Python, else `python -m`.

    Absolute paths: a batch job does not read the login shell's PATH set-up, and
    a shared file system shows the same venv on every node.
    """
    beside = Path(sys.executable).parent / "wattsweep"
    if beside.exists():
        return shlex.quote(str(beside))
    return shlex.join([sys.executable, "-m", "scheduler"])


def _pairs(values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, equals, rest = value.partition("=")
        if not equals:
            fail(f"--env {value!r}: expected NAME=VALUE, e.g. --env HF_DATASETS_CACHE=/shared/hf/datasets")
        pairs.append((name, rest))
    return tuple(pairs)


@app.command()
def slurm(
    queue: Annotated[str, typer.Option("--queue", "--hardware-class",
                                       help="Queue the workers consume = the hardware class of their numbers.")],
    device: Annotated[str, typer.Option(help="'gpu': one worker per allocated GPU (or group); 'cpu': CPU "
                                             "workers.")] = "gpu",
    gpus_per_node: Annotated[int | None, typer.Option(help="GPUs to allocate per node (GRES gpu), split among the "
                                                           "workers by --gpus-per-worker.")] = None,
    gpus_per_worker: Annotated[int, typer.Option(help="GPUs per worker: a group Slurm binds to one srun task, for "
                                                      "jobs that need N GPUs; divides --gpus-per-node.")] = 1,
    split_when_drained: Annotated[bool, typer.Option(
        "--split-when-drained", help="With --gpus-per-worker N: each group goes on as N one-GPU workers once no "
                                     "job needing N GPUs has work left (wattsweep worker --split-when-drained).")]
    = False,
    gpu_type: Annotated[str | None, typer.Option(help="GRES GPU type where the site defines them (gpu:TYPE:N), "
                                                      "e.g. a100.")] = None,
    workers_per_node: Annotated[int | None, typer.Option(help="With --device cpu: CPU workers per node.")] = None,
    nodes: Annotated[int, typer.Option(help="Nodes in one allocation (or use --array).")] = 1,
    array: Annotated[str | None, typer.Option(help="Slurm array spec (e.g. 0-7%4): one-node allocations that start "
                                                   "independently as nodes free up.")] = None,
    time: Annotated[str | None, typer.Option(help="Time limit, Slurm syntax: 90, 12:00:00, 2-00:00:00.")] = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition.")] = None,
    account: Annotated[str | None, typer.Option(help="Slurm account to charge.")] = None,
    job_name: Annotated[str | None, typer.Option(help="Slurm job name; default wattsweep-QUEUE.")] = None,
    cpus_per_worker: Annotated[int | None, typer.Option(help="CPUs per worker task (--cpus-per-task; also "
                                                             "OMP_NUM_THREADS).")] = None,
    grace: Annotated[int, typer.Option(help="Seconds before the time limit at which Slurm sends SIGTERM, so that "
                                            "workers hand back their units; longer than your longest unit.")] = 900,
    requeue: Annotated[bool, typer.Option(help="Let Slurm requeue the job (preemption, node failure).")] = True,
    hf_home: Annotated[str | None, typer.Option(envvar="HF_HOME", show_envvar=True,
                                                help="The shared Hugging Face cache `wattsweep pull` filled.")] = None,
    online: Annotated[bool, typer.Option("--online", help="Let workers reach the Hub (default: HF_HUB_OFFLINE=1, "
                                                          "the shared cache only).")] = False,
    until_done: Annotated[str | None, typer.Option(help="Sweep id or name: end the allocation once it has nothing "
                                                        "queued or running (else the workers wait for more).")]
    = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE exported in the script (repeatable); not for "
                                                       "credentials.")] = None,
    setup: Annotated[list[str] | None, typer.Option(help="Shell line run before the workers, e.g. 'module load "
                                                         "cuda' (repeatable).")] = None,
    sbatch: Annotated[list[str] | None, typer.Option(help="Extra #SBATCH option (repeatable): --sbatch=--mem=64G.")]
    = None,
    wattsweep: Annotated[str | None, typer.Option(help="Command that runs wattsweep on the nodes; default this "
                                                       "installation, by absolute path.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the script here instead of printing it.")] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Pass the script to sbatch now.")] = False,
    database_url: DatabaseOpt = None,
    broker_url: BrokerOpt = None,
) -> None:
    """Write a Slurm batch script that runs one `wattsweep worker` per allocated GPU or group (or CPU workers).

    The workers read WATTSWEEP_DATABASE_URL and WATTSWEEP_BROKER_URL from the
    environment sbatch passes them; the script never contains them. Example, on
    a login node with both exported (README: "Running on a Slurm cluster"):

    wattsweep slurm --queue a100 --gpus-per-node 8 --time 12:00:00 --until-done my-sweep --submit

    (add --gpus-per-worker 4 for two workers of four GPUs each, for jobs with `gpus: 4`)
    """
    from scheduler.slurm import SlurmOptionError, SlurmOptions, render
    from worker.contract.celery_app import queue_name_problem

    if problem := queue_name_problem(queue):
        fail(f"--queue: {problem}")
    options = SlurmOptions(
        queue=queue, wattsweep=wattsweep or default_wattsweep(), device=device, gpus_per_node=gpus_per_node,
        gpus_per_worker=gpus_per_worker, split_when_drained=split_when_drained, gpu_type=gpu_type,
        workers_per_node=workers_per_node, nodes=nodes,
        array=array, time=time, partition=partition, account=account, job_name=job_name,
        cpus_per_worker=cpus_per_worker, grace_s=grace, requeue=requeue,
        hf_home=hf_home, hub_offline=not online, until_done=until_done, env=_pairs(env or []),
        setup=tuple(setup or ()), sbatch=tuple(sbatch or ()))
    try:
        script = render(options)
    except SlurmOptionError as error:
        fail(str(error))
    _check_urls(database_url, broker_url)
    sbatch_path = shutil.which("sbatch") if submit else None
    if submit and sbatch_path is None:
        fail("--submit: sbatch is not on PATH (run on a Slurm login node, or write the script with --out)")
    if out is not None:
        with open_out(out) as file:
            file.write(script)
        os.chmod(out, 0o755)
    if not submit:
        if out is None:
            sys.stdout.write(script)
        else:
            console.print(f"wrote {out}: submit it with `sbatch {out}` (WATTSWEEP_DATABASE_URL and "
                          "WATTSWEEP_BROKER_URL exported)", highlight=False, soft_wrap=True)
        return
    _submit(sbatch_path, script, out, database_url, broker_url)


def _check_urls(database_url: str | None, broker_url: str | None) -> None:
    """The workers need both URLs in the environment they start with; say so now, not from a compute node."""
    if not database_url:
        fail("WATTSWEEP_DATABASE_URL is not set: export the head node's Postgres URL (or pass --database-url); "
             "the workers on the compute nodes read it when the job starts")
    if database_url.startswith("sqlite"):
        fail(f"--database-url {database_url}: workers on several nodes need a shared Postgres database, not SQLite")
    if not broker_url:
        fail("WATTSWEEP_BROKER_URL is not set: export the head node's Redis URL (or pass --broker-url); "
             "the workers on the compute nodes read it when the job starts")


def _submit(sbatch_path: str, script: str, out: Path | None, database_url: str, broker_url: str) -> None:
    # The URLs travel in sbatch's environment (--export=ALL in the script), never in the script.
    environment = os.environ | {"WATTSWEEP_DATABASE_URL": database_url, "WATTSWEEP_BROKER_URL": broker_url}
    command = [sbatch_path, "--parsable"] + ([str(out)] if out is not None else [])
    try:
        result = subprocess.run(command, input=None if out is not None else script, env=environment,
                                capture_output=True, text=True, timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        fail(f"sbatch did not answer within {SBATCH_TIMEOUT_S} s (is slurmctld up?)")
    if result.returncode != 0:
        fail(f"sbatch refused the script: {result.stderr.strip() or result.stdout.strip()}")
    job_id = result.stdout.strip().split(";")[0]
    console.print(f"submitted Slurm job {job_id}: watch it with `squeue -j {job_id}`, the workers with "
                  "`wattsweep workers`", highlight=False, soft_wrap=True)
    if result.stderr.strip():
        errors.print(result.stderr.strip(), highlight=False)
