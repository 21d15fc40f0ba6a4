"""Keeps the simulated node's fake RAPL powercap tree current: `python rapl_daemon.py PROFILE DIR`.

The tree is laid out as Linux lays out /sys/devices/virtual/powercap (one
`intel-rapl:N` package domain per socket, a `dram` subdomain in each, the
`subsystem` link back to the class directory), so that CodeCarbon's real
RAPL code finds and reads it once it is mounted at /sys/class/powercap (see
enter.py). Every `period` seconds each domain's `energy_uj` is rewritten
(atomically: a reader sees the old value or the new one) with the integral
of the profile's power, modulo `max_energy_range_uj`, so the counters wrap
as real ones do, only sooner if the test asks for a small range. Counters
start at different offsets, as real sockets do (CodeCarbon drops counters
that look like mirrors of each other).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakelib"))

import simnode_profile  # noqa: E402


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def domains(profile: simnode_profile.Profile) -> list[tuple[str, str, str, int]]:
    """(relative directory, name, profile key, index) of every domain."""
    out = []
    for socket in range(len(profile.segments[0]["package_w"])):
        package = f"intel-rapl/intel-rapl:{socket}"
        out.append((package, f"package-{socket}", "package_w", socket))
        out.append((f"{package}/intel-rapl:{socket}:0", "dram", "dram_w", socket))
    return out


def build(profile: simnode_profile.Profile, root: str) -> None:
    rapl = profile.rapl
    os.makedirs(os.path.join(root, "intel-rapl"), exist_ok=True)
    link = os.path.join(root, "intel-rapl", "subsystem")
    if not os.path.islink(link):
        os.symlink("..", link)
    _write(os.path.join(root, "intel-rapl", "enabled"), "1\n")
    for relative, name, _, _ in domains(profile):
        folder = os.path.join(root, relative)
        os.makedirs(folder, exist_ok=True)
        _write(os.path.join(folder, "name"), name + "\n")
        _write(os.path.join(folder, "max_energy_range_uj"), f"{int(rapl['max_energy_range_uj'])}\n")
        _write(os.path.join(folder, "enabled"), "1\n")
        if name.startswith("package"):
            _write(os.path.join(folder, "constraint_0_max_power_uw"), f"{int(rapl['max_power_uw'])}\n")
        flat = os.path.join(root, os.path.basename(relative))  # the class directory lists every domain too
        if not os.path.islink(flat):
            os.symlink(relative, flat)
    update(profile, root)


UPDATES = ".updates"  # in the tree's root: the epoch second of each update's values, one a line


def update(profile: simnode_profile.Profile, root: str, log=None) -> None:
    """Write every counter's value at this moment; with `log` (a file open for appending), then that moment: a
    reader between two updates sees the values of the first (SimNode.host_energy_read_j)."""
    rapl, now = profile.rapl, time.time()
    range_uj = int(rapl["max_energy_range_uj"])
    for number, (relative, _, key, index) in enumerate(domains(profile)):
        offset_uj = (number + 1) * range_uj // 7  # distinct starting points, never mirrors of each other
        value = (offset_uj + int(1e6 * profile.energy_j(key, index, now))) % range_uj
        _write(os.path.join(root, relative, "energy_uj"), f"{value}\n")
    if log is not None:
        log.write(f"{now!r}\n")
        log.flush()


def keep_up() -> None:
    """Real RAPL counters advance in hardware whatever the load. On a busy 2-core machine an updater at normal
    priority is sometimes not run for 100 ms and more (measured: 144 ms at most in 20 s, 10.3 ms at real-time
    priority), and a reader then sees a counter that old: an error of the simulation, not of the meter under test.
    Real-time priority where allowed (the node runs as root), else the highest nice level, else as it is. The loop
    sleeps most of each period, so it never holds a core."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    except OSError:
        pass


def main() -> None:
    profile_path, root = sys.argv[1], sys.argv[2]
    period = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
    keep_up()
    build(simnode_profile.load(profile_path), root)
    with open(os.path.join(root, UPDATES), "a") as log:
        update(simnode_profile.load(profile_path), root, log)
        _write(os.path.join(root, ".ready"), "1\n")
        while True:
            update(simnode_profile.load(profile_path), root, log)
            time.sleep(period)


if __name__ == "__main__":
    main()
