"""The engine's process lifecycle with stand-in commands (a process tree that sleeps; one that fails at once):
its own process group, its guard, its log, its error line. The real engine is tests/engines/test_serving.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from worker.engines.guard import group_alive
from worker.engines.process import EngineError, EngineProcess, error_line, free_port

ROOT = Path(__file__).parents[2]
TREE = [sys.executable, "-c", "import os, time\nif os.fork() == 0:\n    time.sleep(600)\ntime.sleep(600)"]


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_stop_ends_the_whole_process_group_and_the_guard(tmp_path):
    engine = EngineProcess(TREE, log_path=tmp_path / "engine.log", stop_grace_s=2)
    engine.start()
    assert engine.alive() and group_alive(engine.pid)
    guard = engine.guard
    engine.stop()
    assert not group_alive(engine.pid)  # the forked child too
    assert guard.poll() is not None
    assert (tmp_path / "engine.log").read_text().startswith("$ ")


def test_a_killed_worker_leaves_no_engine(tmp_path):
    """The worker (here a Python process that starts the engine) dies by SIGKILL: its guard stops the group."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from worker.engines.process import EngineProcess
        engine = EngineProcess({TREE!r}, log_path=Path({str(tmp_path / 'e.log')!r}), stop_grace_s=2)
        engine.start()
        print(engine.pid, flush=True)
        time.sleep(600)
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        pgid = int(worker.stdout.readline())
        assert group_alive(pgid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert wait_until(lambda: not group_alive(pgid), 5.0), "the engine outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_an_engine_that_exits_fails_at_once_with_its_own_error_line(tmp_path):
    failing = [sys.executable, "-c", "import sys\nprint('INFO loading model', flush=True)\n"
               "raise ValueError('the model folder holds no config.json')"]
    engine = EngineProcess(failing, log_path=tmp_path / "engine.log")
    engine.start()
    started = time.monotonic()
    with pytest.raises(EngineError) as error:
        engine.wait_healthy(lambda: False, timeout_s=60)
    assert time.monotonic() - started < 10
    assert "ValueError: the model folder holds no config.json" in str(error.value)
    assert "exited before it was ready (exit status 1)" in str(error.value)
    assert str(tmp_path / "engine.log") in str(error.value)
    engine.stop()


def test_error_line_and_free_port():
    lines = ["INFO start", "Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
             "RuntimeError: Engine core initialization failed.", "INFO bye"]
    assert error_line(lines) == "RuntimeError: Engine core initialization failed."
    assert error_line(["just this"]) == "just this"
    assert 1024 <= free_port() <= 65535
