"""A one-node Slurm cluster of the test's own: munged, slurmctld and slurmd from Debian's packages.

Everything lives in one temp folder (config, munge key and socket, state and
spool dirs, logs), on ports picked free, under a cluster name of its own, so
that it never meets a real Slurm on the machine nor another test session's.
The daemons run in the foreground as children of the test and are stopped by
their pids. Clients (sbatch, srun, squeue, scancel) find the cluster through
SLURM_CONF in `env`.

The node declares more CPUs than this machine has (`config_overrides`), so
that several one-CPU worker tasks fit, and `gpus` fake GPU device files as
GRES: Slurm allocates them and sets CUDA_VISIBLE_DEVICES as it would on a GPU
node; what the workers read about each GPU comes from the fake NVML of the
simulated GPU node (tests/simnode).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

from tests.services import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")
START_TIMEOUT_S = 60.0
KILL_WAIT_S = 10
FAKE_GPU_MAJOR = 242  # scancel: SIGTERM, then SIGKILL this much later (Slurm's KillWait)


def slurm_missing() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    missing = [name for name in (*DAEMONS, "sbatch", "srun", "squeue", "scancel") if shutil.which(name) is None]
    if missing:
        return f"Slurm/munge not installed ({', '.join(missing)} missing; .ci/run installs them)"
    if os.geteuid() != 0:
        return "the Slurm test cluster runs its daemons as root"
    return None


class SlurmCluster:
    def __init__(self, folder: Path, *, cpus: int = 8, gpus: int = 8) -> None:  # an 8-GPU node, as labs have
        self.folder = folder
        self.cpus, self.gpus = cpus, gpus
        self.name = f"ws{uuid.uuid4().hex[:8]}"
        self.node = "wsnode1"
        self.conf = folder / "slurm.conf"
        self.munge_socket = folder / "munge" / "munge.socket"
        self.gpu_files = [folder / "dev" / f"nvidia{i}" for i in range(gpus)]
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {"SLURM_CONF": str(self.conf)}

    # ---- configuration
    def _write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log", "dev", "jobs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder / "munge", 0o700)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        for minor, path in enumerate(self.gpu_files):
            # Slurm takes only character or block devices as GPU files; 242 is a major number reserved for
            # local/experimental use, so these nodes name no real device (on a GPU machine neither).
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(FAKE_GPU_MAJOR, minor))
        f = self.folder
        hostname = socket.gethostname()
        self.conf.write_text("\n".join([
            f"ClusterName={self.name}",
            f"SlurmctldHost={hostname}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SlurmdParameters=config_overrides",
            "GresTypes=gpu",
            "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            f"KillWait={KILL_WAIT_S}",
            "InactiveLimit=0",
            "MinJobAge=300",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "JobRequeue=1",
            f"NodeName={self.node} NodeHostname={hostname} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory=4000 Gres=gpu:{self.gpus} State=UNKNOWN",
            f"PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        (self.folder / "gres.conf").write_text(
            "".join(f"NodeName={self.node} Name=gpu File={path}\n" for path in self.gpu_files))

    # ---- daemons
    def start(self) -> SlurmCluster:
        self._write_config()
        f = self.folder
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={f / 'munge' / 'munge.key'}", f"--pid-file={f / 'munge' / 'munged.pid'}",
                               f"--log-file={f / 'log' / 'munged.log'}", f"--seed-file={f / 'munge' / 'seed'}"])
        self._wait(lambda: self.munge_socket.exists(), "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._ctl("scontrol", "ping").returncode == 0, "slurmctld to answer")
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(self._node_idle, f"node {self.node} to be idle")
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.stdout", "wb")
        try:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL, env=os.environ | self.env,
                                                    start_new_session=True)
        finally:
            log.close()

    def _wait(self, condition, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}) while waiting for {what}: {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")
            time.sleep(0.2)

    def _node_idle(self) -> bool:
        result = self._ctl("sinfo", "-h", "-n", self.node, "-o", "%t")
        return result.stdout.strip() in ("idle", "mix", "alloc")

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons by pid, slurmd first; SIGKILL after a bounded wait."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self._ctl("scancel", "--full", "-u", "root")
            with contextlib.suppress(RuntimeError):
                self._wait(lambda: not self.jobs(), "jobs to end", timeout_s=KILL_WAIT_S + 10)
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    # ---- clients
    def _ctl(self, *command: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=os.environ | self.env, capture_output=True, text=True, timeout=timeout_s)

    def sbatch(self, script: Path, *args: str) -> str:
        result = self._ctl("sbatch", "--parsable", *args, str(script))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().split(";")[0]

    def scancel(self, job_id: str, *args: str) -> None:
        result = self._ctl("scancel", *args, job_id)
        assert result.returncode == 0, result.stderr

    def jobs(self) -> dict[str, str]:
        """Job id -> state of the jobs slurmctld still lists as pending, running or completing."""
        result = self._ctl("squeue", "-h", "-o", "%i %T")
        return dict(line.split() for line in result.stdout.splitlines() if line.strip())

    def job_state(self, job_id: str) -> str | None:
        result = self._ctl("scontrol", "-o", "show", "job", job_id)
        for word in result.stdout.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return None

    def logs(self) -> str:
        tails = []
        for path in sorted((self.folder / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-8:]
            tails.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(tails)
