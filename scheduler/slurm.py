"""A Slurm batch script that runs wattsweep workers on the nodes it is given: a pure function of its options.

What the script does on each allocated node, and why:

- One `srun` step with one task per worker: per GPU, per group of
  `--gpus-per-worker` GPUs, or per CPU worker. Slurm gives each task its own
  GPUs (`--gpus-per-task`, which binds them: the task's CUDA_VISIBLE_DEVICES
  lists only its group, 21.08 and newer), and the worker takes all of them
  (`--gpu 0`, or `--gpus 0,...,N-1`): its pinning reads those entries (indexes
  or UUIDs) and translates them to the physical NVML indexes CodeCarbon
  meters. So every task owns exactly the GPUs Slurm bound to it, whatever
  their numbers on the node, and the groups on a node are disjoint.
- Worker names carry the Slurm job id and restart count: two allocations on
  one node, or a requeued job that starts again seconds later, never meet a
  "live twin" of the same name.
- `--signal=B:TERM@grace`: the batch shell gets SIGTERM `grace` seconds
  before the time limit and passes it on with `scancel --signal=TERM` to
  every task (not through srun, which would cancel the step and kill its
  tasks at once); each worker then stops claiming, finishes or hands back its
  unit and exits, instead of being killed mid-run at the limit.
- Requeue-friendly: all state is in the database, so the script can start
  again from the top (`--requeue`, output appended, fresh worker names).
- The database and broker URLs are read from the environment at run time
  (sbatch exports the submitting shell's environment); they are never written
  into the file, which may be world-readable on a shared file system.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

SECRET_URL_NAMES = ("WATTSWEEP_DATABASE_URL", "WATTSWEEP_BROKER_URL")
_SECRET_WORDS = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|(^|_)KEY($|_)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_ARRAY = re.compile(r"^\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*(%\d+)?$")
_GRES_TYPE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SLURM_WORD = re.compile(r"^[A-Za-z0-9_.,:+=@%/-]+$")  # partition, account, job name: no spaces, no shell syntax
MAX_SIGNAL_S = 65535  # sbatch --signal's limit


class SlurmOptionError(ValueError):
    """An option value the script cannot be written with; the message names the option and the value."""


@dataclass(frozen=True)
class SlurmOptions:
    queue: str  # the hardware class = the Celery queue the workers consume
    wattsweep: str  # the command that runs wattsweep on the compute nodes
    device: str = "gpu"  # "gpu": one worker per allocated GPU or group; "cpu": workers_per_node CPU workers
    gpus_per_node: int | None = None
    gpus_per_worker: int = 1  # a worker's group of GPUs; divides gpus_per_node
    split_when_drained: bool = False  # each group goes on as one-GPU workers once its work is done
    gpu_type: str | None = None  # a GRES type the site defines (gpu:a100:4), where GPU models are mixed
    workers_per_node: int | None = None
    nodes: int = 1
    array: str | None = None  # Slurm --array syntax: each array task is a one-node allocation of its own
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    cpus_per_worker: int | None = None
    grace_s: int = 900
    requeue: bool = True
    hf_home: str | None = None
    hub_offline: bool = True
    until_done: str | None = None  # a sweep id or name: stop the workers once it has nothing left to run
    env: tuple[tuple[str, str], ...] = ()
    setup: tuple[str, ...] = ()
    sbatch: tuple[str, ...] = field(default=())  # extra #SBATCH lines, e.g. "--mem=64G"


def time_limit_s(value: str) -> int | None:
    """Seconds in a Slurm --time value (minutes alone, [D-]H:M:S, ...), None for no limit (0, UNLIMITED,
    INFINITE); SlurmOptionError if it is not one."""
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = _TIME.match(value)
    if not match:
        raise SlurmOptionError(f"--time {value!r}: use a Slurm time limit such as 90 (minutes), 12:00:00 or 2-00:00:00")
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = first, second or 0, third or 0
    elif third is not None:  # H:M:S
        hours, minutes, seconds = first, second, third
    elif second is not None:  # M:S
        hours, minutes, seconds = 0, first, second
    else:  # M
        hours, minutes, seconds = 0, first, 0
    total = (days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds
    return total or None  # Slurm reads a zero limit as none


def check(options: SlurmOptions) -> None:
    """Refuse values the script cannot honour, one problem per message, naming the option."""
    if not _SLURM_WORD.match(options.queue):
        raise SlurmOptionError(f"--queue {options.queue!r}: no spaces or shell characters")
    if options.until_done is not None and not _SLURM_WORD.match(options.until_done):
        raise SlurmOptionError(f"--until-done {options.until_done!r}: a sweep id or name without spaces")
    if "\n" in options.wattsweep:
        raise SlurmOptionError(f"--wattsweep {options.wattsweep!r}: one command line")
    if options.device not in ("gpu", "cpu"):
        raise SlurmOptionError(f"--device {options.device!r}: use 'gpu' (one worker per GPU) or 'cpu'")
    _positive("--nodes", options.nodes)
    _positive("--gpus-per-worker", options.gpus_per_worker)
    for name, value in (("--gpus-per-node", options.gpus_per_node), ("--workers-per-node", options.workers_per_node),
                        ("--cpus-per-worker", options.cpus_per_worker)):
        if value is not None:
            _positive(name, value)
    if options.gpu_type is not None and (options.device != "gpu" or not _GRES_TYPE.match(options.gpu_type)):
        raise SlurmOptionError(f"--gpu-type {options.gpu_type!r}: a GRES type name (e.g. a100) for GPU workers")
    if options.device == "gpu":
        if options.gpus_per_node is None:
            raise SlurmOptionError("--gpus-per-node is required for GPU workers (or use --device cpu)")
        if options.workers_per_node is not None:
            raise SlurmOptionError("--workers-per-node is for --device cpu; GPU nodes run one worker per "
                                   "--gpus-per-worker GPUs")
        if options.split_when_drained and options.gpus_per_worker < 2:
            raise SlurmOptionError("--split-when-drained splits groups: give --gpus-per-worker 2 or more")
        if options.gpus_per_node % options.gpus_per_worker:
            raise SlurmOptionError(f"--gpus-per-worker {options.gpus_per_worker} must divide --gpus-per-node "
                                   f"{options.gpus_per_node}: each node's GPUs are split into whole groups")
    else:
        if options.gpus_per_node is not None:
            raise SlurmOptionError("--gpus-per-node is for GPU workers; CPU nodes take --workers-per-node N")
        if options.gpus_per_worker != 1:
            raise SlurmOptionError("--gpus-per-worker is for GPU workers (with --gpus-per-node), not --device cpu")
        if options.workers_per_node is None:
            raise SlurmOptionError("--workers-per-node N is required with --device cpu")
    if options.array is not None:
        if not _ARRAY.match(options.array):
            raise SlurmOptionError(f"--array {options.array!r}: use Slurm's syntax, e.g. 0-7 or 0-15%4")
        if options.nodes != 1:
            raise SlurmOptionError("give --nodes or --array, not both: each array task is one node")
    if not 0 < options.grace_s <= MAX_SIGNAL_S:
        raise SlurmOptionError(f"--grace {options.grace_s}: seconds between 1 and {MAX_SIGNAL_S}")
    limit = time_limit_s(options.time) if options.time is not None else None
    if limit is not None and options.grace_s >= limit:
        raise SlurmOptionError(f"--grace {options.grace_s} s must be shorter than --time {options.time} ({limit} s)")
    for name, value in (("--partition", options.partition), ("--account", options.account),
                        ("--job-name", options.job_name)):
        if value is not None and not _SLURM_WORD.match(value):
            raise SlurmOptionError(f"{name} {value!r}: no spaces or shell characters")
    for line in options.sbatch:
        if not line.startswith("-") or "\n" in line or "\r" in line:
            raise SlurmOptionError(f"--sbatch {line!r}: one sbatch option per value, e.g. --sbatch=--mem=64G")
    for name, value in options.env:
        _check_env(name, value)
    for line in options.setup:
        if "\n" in line or "\r" in line:
            raise SlurmOptionError(f"--setup {line!r}: one shell line per value")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise SlurmOptionError(f"{name} {value}: must be 1 or more")


def _check_env(name: str, value: str) -> None:
    if not _ENV_NAME.match(name):
        raise SlurmOptionError(f"--env {name}={value}: NAME=VALUE with a shell variable name")
    if name in SECRET_URL_NAMES:
        raise SlurmOptionError(f"--env {name}: the URLs are read from the environment when the job runs, "
                               "never written into the script; export it before sbatch")
    if _SECRET_WORDS.search(name.upper()):
        raise SlurmOptionError(f"--env {name}: looks like a credential; export it before sbatch instead "
                               "(the script may be readable by others)")
    if "\n" in value or "\r" in value:
        raise SlurmOptionError(f"--env {name}: one line per value")


def render(options: SlurmOptions) -> str:
    """The batch script, after `check`."""
    check(options)
    return "\n".join([*_header(options), "", *_environment(options), "", *_body(options)]) + "\n"


def _workers_per_node(options: SlurmOptions) -> int:
    return options.gpus_per_node // options.gpus_per_worker if options.device == "gpu" else options.workers_per_node


def _header(options: SlurmOptions) -> list[str]:
    per_node = _workers_per_node(options)
    if options.device == "cpu":
        what = f"{per_node} CPU worker(s)"
    else:
        what = f"{per_node} GPU worker(s) of {options.gpus_per_worker} GPU(s)"
    where = f"array {options.array}, one node each" if options.array else f"{options.nodes} node(s)"
    lines = [
        "#!/bin/bash",
        f"# wattsweep workers for queue {options.queue}: {what} per node, {where}. Written by `wattsweep slurm`;",
        "# submit with `sbatch THIS-FILE` from a shell where WATTSWEEP_DATABASE_URL and WATTSWEEP_BROKER_URL are",
        "# exported: they are read when the job runs and never written here. Submit again to add nodes mid-sweep.",
        f"#SBATCH --job-name={options.job_name or 'wattsweep-' + options.queue}",
    ]
    if options.array:
        lines += [f"#SBATCH --array={options.array}", "#SBATCH --nodes=1"]
    else:
        lines.append(f"#SBATCH --nodes={options.nodes}")
    lines.append(f"#SBATCH --ntasks-per-node={per_node}")
    if options.device == "gpu":
        lines.append(f"#SBATCH --gres={_gres(options)}")
    if options.cpus_per_worker:
        lines.append(f"#SBATCH --cpus-per-task={options.cpus_per_worker}")
    for flag, value in (("time", options.time), ("partition", options.partition), ("account", options.account)):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [
        f"#SBATCH --signal=B:TERM@{options.grace_s}",
        "#SBATCH --requeue" if options.requeue else "#SBATCH --no-requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={'%x-%A_%a.out' if options.array else '%x-%j.out'}",
        "#SBATCH --export=ALL",
    ]
    lines += [f"#SBATCH {line}" for line in options.sbatch]
    return lines


def _gres(options: SlurmOptions) -> str:
    return f"gpu:{_typed(options, options.gpus_per_node)}"


def _typed(options: SlurmOptions, count: int) -> str:
    """A GPU count in Slurm's [TYPE:]N form."""
    return f"{options.gpu_type}:{count}" if options.gpu_type else str(count)


def _gpu_option(gpus_per_worker: int) -> str:
    """The worker's GPUs, as indexes into the CUDA_VISIBLE_DEVICES Slurm bound to its task: all of them."""
    if gpus_per_worker == 1:
        return "--gpu 0"
    return "--gpus " + ",".join(str(i) for i in range(gpus_per_worker))


def _environment(options: SlurmOptions) -> list[str]:
    lines = [
        f': "${{{name}:?is not set: export it before sbatch (wattsweep slurm never writes it into the script)}}"'
        for name in SECRET_URL_NAMES
    ]
    if options.hf_home:
        lines.append(f"export HF_HOME={shlex.quote(options.hf_home)}  # the shared cache `wattsweep pull` filled")
    if options.hub_offline:
        lines.append("export HF_HUB_OFFLINE=1  # compute nodes read the shared cache only")
    if options.cpus_per_worker:
        lines.append(f"export OMP_NUM_THREADS={options.cpus_per_worker}  # torch threads = the worker's CPUs")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in options.env]
    lines += list(options.setup)
    return lines


def _body(options: SlurmOptions) -> list[str]:
    per_node = _workers_per_node(options)
    kind = "gpu" if options.device == "gpu" else "cpu"
    # e.g. gpu2-slurm4711.0@node7: task, allocation and restart make the name unique on the node
    name = (f'"{kind}${{SLURM_LOCALID}}-slurm${{SLURM_JOB_ID}}.${{SLURM_RESTART_COUNT:-0}}'
            '@${SLURMD_NODENAME:-$(hostname -s)}"')
    device = _gpu_option(options.gpus_per_worker) if options.device == "gpu" else "--device cpu"
    if options.split_when_drained:  # the task's worker then supervises: its group, then one worker per GPU
        device += " --split-when-drained"
    worker = f"exec {options.wattsweep} worker --queue {shlex.quote(options.queue)} {device} --name {name}"
    srun = f"srun --ntasks-per-node={per_node} --kill-on-bad-exit=0"
    if options.cpus_per_worker:
        srun += f" --cpus-per-task={options.cpus_per_worker}"  # Slurm 22.05's srun no longer takes it from sbatch
    if options.device == "gpu":
        srun += f" --gpus-per-task={_typed(options, options.gpus_per_worker)}"  # each task bound to its own group
    lines = [
        f"wattsweep=({options.wattsweep})",
        f"worker={shlex.quote(worker)}",
        f'{srun} bash -c "$worker" &',
        "workers=$!",
        # Signal the workers through slurmctld: srun itself treats SIGTERM as "cancel the step" and kills its
        # tasks at once. `scancel --signal` reaches every step of this job but not this batch shell.
        'stop() { echo "wattsweep: $1: asking the workers to hand back their units"; '
        'scancel --signal=TERM "$SLURM_JOB_ID"; }',
        "# SIGTERM comes --grace s before the time limit (--signal=B:...), and from scancel.",
        "trap 'stop SIGTERM' TERM",
    ]
    if options.until_done:
        sweep = shlex.quote(options.until_done)
        lines += [
            f"# End the allocation once sweep {options.until_done} has nothing queued or running.",
            f'( "${{wattsweep[@]}}" status {sweep} --watch >/dev/null 2>&1 '
            f'&& stop "sweep {options.until_done} finished" ) &',
        ]
    lines += [
        'while kill -0 "$workers" 2>/dev/null; do wait "$workers"; done  # a trap interrupts wait: wait again',
        'wait "$workers"',
    ]
    return lines
