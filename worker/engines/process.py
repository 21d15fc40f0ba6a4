"""An engine as the worker's child process: a free local port, its own log file, a health wait, a clean stop.

The engine runs in a process group of its own, so that a stop reaches every process it started (vLLM runs its
engine core in a second process), and a guard (worker.engines.guard) stops that group if the worker dies. The
engine's stdout and stderr go to a log file that is kept (its path is stored with the job); when the engine
exits before it is healthy, or dies while serving, the error is its own line from that log.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from worker.engines.guard import group_alive, stop_group

log = logging.getLogger(__name__)
ERROR_SIGNS = ("Error", "error:", "Exception", "Traceback", "FAILED", "No such file", "not found", "Killed")
TAIL_LINES = 20
STOP_GRACE_S = 15.0


class EngineError(RuntimeError):
    """The engine did not start, or died; the message holds the engine's own error line."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the engine binds it a moment later; a clash fails its start visibly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` non-empty lines of a log file (its last 64 KiB are read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


EXCEPTION = re.compile(r"^(\(\w+ pid=\d+\) )?[\w.]*(Error|Exception|Exit|Interrupt)\b.*:")


def error_line(lines: list[str]) -> str | None:
    """The engine's own error message: its last Python exception with the indented detail below it (pydantic puts
    the reason there), else the last line that reads like an error, else its last line."""
    for i in range(len(lines) - 1, -1, -1):
        if EXCEPTION.match(lines[i]):
            detail = [line.strip() for line in lines[i + 1:i + 3] if line.startswith(" ") and "errors.pydantic" not in
                      line and not line.lstrip().startswith("File \"")]
            return " ".join([lines[i].strip(), *detail])[:500]
    for line in reversed(lines):
        if any(sign in line for sign in ERROR_SIGNS) and not line.lstrip().startswith("File \""):
            return line.strip()[:500]
    return lines[-1].strip()[:500] if lines else None


class EngineProcess:
    """One running engine: `start`, `wait_healthy(probe)`, `alive`, `stop`."""

    def __init__(self, command: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 stop_grace_s: float = STOP_GRACE_S) -> None:
        self.command = command
        self.log_path = Path(log_path)
        self.env = env
        self.stop_grace_s = stop_grace_s
        self.process: subprocess.Popen | None = None
        self.guard: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"$ {' '.join(self.command)}\n".encode())
            log_file.flush()
            try:
                self.process = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
            except OSError as error:
                raise EngineError(f"engine command {self.command[0]!r} cannot run: {error.strerror}") from None
        self.guard = subprocess.Popen([sys.executable, "-m", "worker.engines.guard", str(os.getpid()),
                                       str(self.process.pid), str(self.stop_grace_s)],
                                      stdin=subprocess.DEVNULL, cwd=str(Path(__file__).parents[2]))
        log.info("engine started (pid %s, log %s): %s", self.process.pid, self.log_path, " ".join(self.command))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self, what: str) -> EngineError:
        """An EngineError for `what` ("exited before it was ready", ...) with the engine's error line."""
        tail = log_tail(self.log_path)
        code = self.process.poll() if self.process else None
        status = f" (exit status {code})" if code is not None else ""
        return EngineError(f"engine {what}{status}: {error_line(tail) or 'no output'} [log: {self.log_path}]")

    def wait_healthy(self, healthy: Callable[[], bool], timeout_s: float, poll_s: float = 0.25) -> float:
        """Seconds until `healthy()` holds; EngineError at once when the engine exits, or after `timeout_s`."""
        started = time.monotonic()
        while True:
            if not self.alive():
                raise self.failure("exited before it was ready")
            try:
                if healthy():
                    return time.monotonic() - started
            except Exception:  # not listening yet
                pass
            if time.monotonic() - started > timeout_s:
                self.stop()
                raise self.failure(f"was not ready after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM to the engine's group, SIGKILL after the grace period; then the guard goes too."""
        if self.process is not None:
            stop_group(self.process.pid, self.stop_grace_s)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent to the group
                log.warning("engine pid %s did not exit after SIGKILL", self.process.pid)
            if group_alive(self.process.pid):  # a child that outlived its leader: the group id still names it
                with suppress(ProcessLookupError, subprocess.TimeoutExpired, OSError):
                    os.killpg(self.process.pid, signal.SIGKILL)
        if self.guard is not None and self.guard.poll() is None:
            self.guard.terminate()
            with suppress(ProcessLookupError, subprocess.TimeoutExpired, OSError):
                self.guard.wait(timeout=5)
        self.guard = None

