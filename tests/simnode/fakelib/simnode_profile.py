"""The simulated node's power profile: one JSON file that every process of the node reads alike.

Power is piecewise constant in wall-clock time: a list of segments, each
starting at an epoch second (`at`) and holding until the next one. A
counter's energy at time t is the integral of its power from the first
segment to t, so any process (the fake NVML in each worker, the RAPL
updater, the test itself) computes the same counter value from the same
file and the same clock. The test changes the profile by appending a
segment that starts a little in the future (see `tests.simnode.SimNode`),
so that no process ever reads a counter that a later version of the file
would contradict.

Standard library only: this module is imported by the fake `pynvml` inside
worker processes.
"""

from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass
from typing import Any

ENV = "SIMNODE_PROFILE"  # path of the profile file, set by the test for every process of the node


@dataclass(frozen=True)
class Profile:
    data: dict[str, Any]

    @property
    def gpus(self) -> list[dict[str, Any]]:
        return self.data["gpus"]

    @property
    def segments(self) -> list[dict[str, Any]]:
        return self.data["segments"]

    @property
    def rapl(self) -> dict[str, Any]:
        return self.data["rapl"]

    @property
    def nvml_update_s(self) -> float:
        return float(self.data.get("nvml_update_s", 0.1))

    def segment_at(self, t: float) -> dict[str, Any]:
        starts = [s["at"] for s in self.segments]
        i = bisect.bisect_right(starts, t) - 1
        return self.segments[max(i, 0)]

    def value(self, key: str, index: int, t: float) -> float:
        return float(self.segment_at(t)[key][index])

    def energy_j(self, key: str, index: int, t: float) -> float:
        """Integral of `key`[index] (watts) from the first segment to epoch second `t`."""
        total = 0.0
        segments = self.segments
        for i, segment in enumerate(segments):
            start = segment["at"]
            if start >= t:
                break
            end = segments[i + 1]["at"] if i + 1 < len(segments) else t
            total += float(segment[key][index]) * (min(end, t) - start)
        return total

    def energy_between_j(self, key: str, index: int, t0: float, t1: float) -> float:
        return self.energy_j(key, index, t1) - self.energy_j(key, index, t0)


_cache: dict[str, tuple[tuple[int, int], Profile]] = {}


def load(path: str | None = None) -> Profile:
    """The profile at `path` (default: $SIMNODE_PROFILE), re-read whenever the file changed."""
    path = path or os.environ[ENV]
    stat = os.stat(path)
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _cache.get(path)
    if cached is None or cached[0] != key:
        with open(path) as handle:
            cached = (key, Profile(json.load(handle)))
        _cache[path] = cached
    return cached[1]


def log_counter_read(host: str, index: int, t: float, value_mj: int) -> None:
    """Append one energy-counter read to the profile's read log ($SIMNODE_PROFILE.reads), so that a test can
    compare a window's energy with the counter between the reads that opened and closed it, whatever the
    machine's load did to the time between CodeCarbon's clock and its reads. One short O_APPEND write: atomic."""
    fd = os.open(f"{os.environ[ENV]}.reads", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, f"{host} {index} {t:.6f} {value_mj}\n".encode())
    finally:
        os.close(fd)


def save(path: str, data: dict[str, Any]) -> None:
    """Write atomically (rename), so that a reader sees the old file or the new one, never half of one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)
