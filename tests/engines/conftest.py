"""The real engine: vLLM's CPU build in its own venv (`make vllm`: .venv-vllm), or WATTSWEEP_VLLM_COMMAND."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DEFAULT_COMMAND = f"{ROOT / '.venv-vllm' / 'bin' / 'python'} -m vllm.entrypoints.openai.api_server"
SWEEP_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def vllm_command() -> str:
    command = os.environ.get("WATTSWEEP_VLLM_COMMAND") or DEFAULT_COMMAND
    if not Path(shlex.split(command)[0]).exists():
        pytest.skip(f"no vLLM at {shlex.split(command)[0]}: `make vllm` builds it (or set WATTSWEEP_VLLM_COMMAND)")
    return command


@pytest.fixture(scope="session")
def tiny_llama() -> Path:
    """The tiny Llama the engine serves, saved where `tiny:llama` jobs find it (worker.engines.served)."""
    from worker.engines.served import model_location

    return Path(model_location("tiny:llama", "text-generation")[0])


def run_sweep(sweep_file: Path, database: Path, *, vllm_command: str, log_dir: Path, wait: bool = True,
              extra_env: dict | None = None) -> subprocess.Popen | subprocess.CompletedProcess:
    """`wattsweep run` in a process of its own, as a user runs it (local mode)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATTSWEEP_VLLM_COMMAND": vllm_command,
           "WATTSWEEP_ENGINE_LOG_DIR": str(log_dir), **(extra_env or {})}
    command = [sys.executable, "-m", "scheduler", "run", str(sweep_file), "--database-url", f"sqlite:///{database}"]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)


def rows(database: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql).fetchall()


def engine_ports(log_dir: Path) -> list[int]:
    """The ports of the engines started with their logs in `log_dir` (the command is each log's first line)."""
    ports = []
    for log in sorted(log_dir.glob("*.log")):
        ports += [int(port) for port in re.findall(r"--port (\d+)", log.read_text(errors="replace"))]
    return ports


def engine_pids(port: int) -> list[int]:
    """Processes serving on `port` as our engines are started (their command line names the port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"--port {port} " in line + " " and "--served-model-name" in line:
            found.append(int(entry.name))
    return found


def wait_for(condition, timeout_s: float, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    return condition()
