"""`--split-when-drained`'s two halves without a GPU: the group worker's drain check (worker.process.drain) and the
supervisor that turns a drained group into one-GPU workers (worker.process.supervisor), with real child processes.
The whole flow on the simulated GPU node: tests/distributed/test_group_split.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from worker.process.drain import EXIT_DRAINED, DrainWatch
from worker.process.supervisor import group_and_singles, supervise


def watch(drained) -> tuple[DrainWatch, list[bool]]:
    seen: list[bool] = []
    idle = threading.Lock()
    return DrainWatch(idle=idle, drained=drained, on_drained=lambda: seen.append(idle.locked()), every_s=60), seen


def test_the_drain_check_runs_only_between_jobs_and_survives_a_database_that_is_away():
    asked = []
    check, seen = watch(lambda: asked.append(1) or True)
    with check.idle:  # a job runs
        assert check.check() is False and asked == []
    assert check.check() is True and seen == [True]  # decided with the lock held: no job starts in between

    def away() -> bool:
        raise ConnectionError("server closed the connection\nunexpectedly")

    check, seen = watch(away)
    assert check.check() is False and seen == [] and not check.idle.locked()
    check, seen = watch(lambda: False)
    assert check.check() is False and seen == []


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_drained_group_goes_on_as_its_one_gpu_workers_and_the_worst_status_is_the_commands():
    assert supervise(python(f"raise SystemExit({EXIT_DRAINED})"),
                     [python("raise SystemExit(0)"), python("raise SystemExit(3)")]) == 3
    assert supervise(python("raise SystemExit(2)"), [python("raise SystemExit(5)")]) == 2  # not drained: no more
    assert supervise(python("raise SystemExit(0)"), [python("raise SystemExit(5)")]) == 0


def test_the_childrens_command_lines_are_the_group_then_one_gpu_each():
    group, singles = group_and_singles(["--queue", "h100"], ["4", "5"])
    assert group[1:] == ["-m", "scheduler", "worker", "--queue", "h100", "--gpus", "4,5", "--exit-when-drained"]
    assert [argv[1:] for argv in singles] == [["-m", "scheduler", "worker", "--queue", "h100", "--gpu", gpu]
                                             for gpu in ("4", "5")]


def test_sigterm_reaches_the_one_gpu_workers_and_the_command_exits_with_their_status(tmp_path):
    ready = tmp_path / "ready"
    single = python("import pathlib, signal, sys, time\n"
                    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                    f"pathlib.Path({str(ready)!r}).open('a').write('x')\n"
                    "time.sleep(60)\nsys.exit(9)")
    script = ("import sys\nfrom worker.process.supervisor import supervise\n"
              f"sys.exit(supervise({python(f'raise SystemExit({EXIT_DRAINED})')!r}, {[single, single]!r}))")
    command = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not (ready.exists() and ready.read_text() == "xx"):
        assert time.monotonic() < deadline and command.poll() is None
        time.sleep(0.05)
    command.send_signal(signal.SIGTERM)
    assert command.wait(30) == 0  # each child exited 0 on the SIGTERM passed on, long before its 60 s sleep
