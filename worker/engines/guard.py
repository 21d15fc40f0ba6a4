"""The engine's guard: a tiny process that stops the engine when the worker that started it is gone.

The worker starts the engine in a process group of its own (so that stopping it reaches vLLM's engine-core and
its other children too) and, beside it, this guard, as a child of the worker. The guard polls its parent: when
the worker dies, even by SIGKILL, the guard is re-parented, notices within `POLL_S`, and stops the engine's
group (SIGTERM, then SIGKILL after the grace period), so that no engine outlives its worker and holds a GPU.
It also exits by itself once the engine's group is gone. Standard library only: it starts in milliseconds.

    python -m worker.engines.guard WORKER_PID ENGINE_PGID GRACE_S

(Parent-death signals, prctl(PR_SET_PDEATHSIG), fire when the forking *thread* ends, not the process, so a
worker that starts engines from a helper thread would lose them: polling is the robust choice.)
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.2


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a group we may not signal is alive
        return True
    return True


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to the engine's process group, SIGKILL to what is left after `grace_s`."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    worker_pid, pgid, grace_s = int(argv[0]), int(argv[1]), float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the worker, which stops the engine itself
    signal.signal(signal.SIGTERM, lambda *_: (stop_group(pgid, grace_s), os._exit(0)))
    while True:
        if not group_alive(pgid):
            return 0
        if os.getppid() != worker_pid:  # the worker is gone: we were re-parented
            stop_group(pgid, grace_s)
            return 0
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
