"""`wattsweep worker --gpus 0,1,2,3 --split-when-drained`: a group worker that goes on as one-GPU workers.

The command's own process is a small supervisor (standard library only; it never imports torch nor touches a
GPU). It runs the group worker as its child (`wattsweep worker --gpus ...`, exiting EXIT_DRAINED once nothing is
left for its size while one-GPU jobs wait: worker.process.drain), then, on that status only, one child
`wattsweep worker --gpu i` per GPU of the group, under the names the one-GPU form gives them, and waits for them.
SIGTERM and SIGINT are passed on to the children as SIGTERM (Celery's warm shutdown; a second SIGINT would be a
cold one), and the supervisor exits with its children's worst status. A child is also sent SIGTERM by the kernel
should the supervisor die without passing anything on (Linux: the parent-death signal).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Sequence

from worker.process.drain import EXIT_DRAINED

log = logging.getLogger(__name__)


class SplitError(ValueError):
    """--split-when-drained cannot be used as given; the message is one line for the user."""


def group_to_split(gpus: str | None, gpu: int | None, device: str | None) -> list[int]:
    """The group --split-when-drained splits: a --gpus of two GPUs or more."""
    from worker.process.pinning import PinningError, parse_gpu_group

    if gpus is None or gpu is not None or device is not None:
        raise SplitError("--split-when-drained splits a group of GPUs: give it with --gpus N,M,...")
    try:
        group = parse_gpu_group(gpus)
    except PinningError as error:
        raise SplitError(str(error)) from None
    if len(group) < 2:
        raise SplitError(f"--gpus {gpus} --split-when-drained: a group of one GPU has nothing to split; use "
                         f"--gpu {group[0]}")
    return group


def group_and_singles(worker_args: Sequence[str], gpus: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The children's command lines: `worker_args` are the options both share (queue, log level), `gpus` the
    group's entries as given to --gpus."""
    command = [sys.executable, "-m", "scheduler", "worker", *worker_args]
    return ([*command, "--gpus", ",".join(gpus), "--exit-when-drained"],
            [[*command, "--gpu", gpu] for gpu in gpus])


def supervise(group: list[str], singles: list[list[str]]) -> int:
    """Run `group`; if it exits drained, run `singles` until they end. Returns the worst exit status."""
    children: list[subprocess.Popen] = []
    stopping = False

    def pass_on(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        children.append(_start(group))
        status = _wait(children[0])
        if status != EXIT_DRAINED:
            return status
        if stopping:  # told to stop while the group was splitting: nothing more to start
            return 0
        log.info("the group's work is done: its GPUs go on as %d one-GPU workers", len(singles))
        for argv in singles:
            if stopping:
                break
            children.append(_start(argv))
        if stopping:  # a signal between two starts reached only the children started before it
            pass_on(signal.SIGTERM, None)
        return max((_wait(child) for child in children[1:]), default=0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, preexec_fn=_term_with_parent)  # the supervisor has no threads: preexec is safe


def _wait(child: subprocess.Popen) -> int:
    status = child.wait()
    return 128 - status if status < 0 else status  # killed by signal N: the shell's 128 + N


def _term_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (prctl PR_SET_PDEATHSIG; Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
