"""Private Postgres and Redis servers for tests that must kill, restart, cut off or re-address them.

The machine's shared Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) serve
every engineer's tests at once: they are never stopped, restarted or
reconfigured. A test that needs a database or broker on another address (a
network namespace's veth), or one it may crash, starts its own here:

    with PrivatePostgres(host="10.23.0.1") as pg, PrivateRedis(host="10.23.0.1") as broker:
        with scratch_database(pg.admin_url) as url:   # a migrated database (tests.scratch_db)
            ...
        pg.kill(); pg.start()       # a crash, then crash recovery, same data and port
        broker.restart()            # stop + start: without appendonly its queues are gone

Each server is a child process of the test, started in its own session, and
stopped by that pid (its process group for Postgres, whose backends are its
children). Every wait is bounded in time. Postgres refuses to run as root, so
as root the cluster belongs to the `postgres` system user, in a folder of its
own under the system temp dir (pytest's tmp_path is private to root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ServiceError(RuntimeError):
    """A private server failed to start or stop; the message ends with its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def postgres_bindir() -> Path:
    """Where initdb and postgres live: pg_config's answer, else Debian's newest /usr/lib/postgresql/N/bin."""
    if shutil.which("pg_config"):
        found = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
        if (found / "postgres").exists():
            return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise ServiceError("no PostgreSQL server binaries (install postgresql)")
    return versions[-1].parent


def _wait_for_port(host: str, port: int, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServiceError(f"exited with {process.returncode} while starting: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"not listening on {host}:{port} after {timeout_s:.0f} s: {_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _Server:
    """Start/stop/kill/restart of one child process by pid; subclasses say how to prepare and start it."""

    name = "server"

    def __init__(self, folder: Path | None, host: str, port: int | None) -> None:
        self._own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix=f"wattsweep-{self.name}-"))
        self.host = host
        self.port = port or free_port(host)
        self.log_path = self.folder / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def running(self) -> bool:
        return self.pid is not None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Once, before the first start."""

    def _popen_options(self) -> dict:
        return {}

    def start(self, timeout_s: float = START_TIMEOUT_S):
        if self.running():
            return self
        self._prepare()
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            **self._popen_options())
        finally:
            log.close()
        try:
            _wait_for_port(self.host, self.port, self.process, self.log_path, timeout_s)
        except ServiceError as error:
            self.kill()
            raise ServiceError(f"private {self.name} on {self.host}:{self.port}: {error}") from None
        return self

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # its own session: the server and its children, no one else

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """A clean shutdown; SIGKILL if it does not finish in time."""
        if self.process is None:
            return
        self._signal(self._stop_signal)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._signal(signal.SIGKILL)  # stragglers of the group (a backend that outlived its postmaster)

    _stop_signal = signal.SIGTERM

    def kill(self) -> None:
        """A crash: SIGKILL to the server and its children, nothing flushed."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the folder this helper created."""
        self.stop()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


class PrivatePostgres(_Server):
    """A PostgreSQL cluster of the test's own: initdb once, trust auth, listening on `host`:`port` only.

    `allow` is the client address range pg_hba.conf trusts (e.g. the test's
    subnet); `settings` are extra `-c name=value` server options. fsync is off:
    a killed server still recovers everything committed (the OS kept the
    pages), only a power cut would not, and tests do not cut power.
    """

    name = "postgres"
    _stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit

    def __init__(self, folder: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None,
                 allow: str = "0.0.0.0/0", settings: dict[str, str] | None = None) -> None:
        super().__init__(folder, host, port)
        self.allow = allow
        self.settings = {"fsync": "off", "max_connections": "200", **(settings or {})}
        self.data = self.folder / "data"
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def _popen_options(self) -> dict:
        return {"user": self._user} if self._user else {}

    def _prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        if self._user:  # the postgres user owns the cluster and must reach it
            shutil.chown(self.folder, self._user)
            os.chmod(self.folder, 0o700)
        result = subprocess.run([str(postgres_bindir() / "initdb"), "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"],
                                capture_output=True, text=True, timeout=120, **self._popen_options())
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip()[-800:]}")
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.allow} trust\n")

    def _command(self) -> list[str]:
        options = {"listen_addresses": self.host, "port": str(self.port), "unix_socket_directories": "",
                   **self.settings}
        command = [str(postgres_bindir() / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            command += ["-c", f"{key}={value}"]
        return command

    def start(self, timeout_s: float = START_TIMEOUT_S):
        super().start(timeout_s)
        self._wait_accepting(timeout_s)  # listening is not accepting: crash recovery comes first
        return self

    def _wait_accepting(self, timeout_s: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError as error:
                if "pg_hba.conf rejects connection" in str(error):
                    return  # past recovery and answering: its pg_hba.conf keeps the superuser off TCP (compose's)
                if time.monotonic() > deadline or not self.running():
                    raise ServiceError(f"private postgres on {self.host}:{self.port} does not accept "
                                       f"connections: {error}; {_tail(self.log_path)}") from None
                time.sleep(0.2)


class PrivateRedis(_Server):
    """A redis-server of the test's own on `host`:`port`; no persistence unless `appendonly=True`."""

    name = "redis"

    def __init__(self, folder: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None,
                 appendonly: bool = False, config: dict[str, str] | None = None) -> None:
        super().__init__(folder, host, port)
        self.config = {"appendonly": "yes" if appendonly else "no", **(config or {})}

    def url(self, database: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{database}"

    def _command(self) -> list[str]:
        options = {"port": str(self.port), "bind": self.host, "protected-mode": "no", "save": "",
                   "dir": str(self.folder), "daemonize": "no", **self.config}
        command = ["redis-server"]
        for key, value in options.items():
            command += [f"--{key}", value]
        return command
