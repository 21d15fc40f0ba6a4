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
from dataclasses import dataclass, field
from typing import Any

ENV = "SIMNODE_PROFILE"  # path of the profile file, set by the test for every process of the node


@dataclass(frozen=True)
class Profile:
    data: dict[str, Any]
    # Power limits set through the fake NVML (nvmlDeviceSetPowerManagementLimit): GPU index -> [(at, watts)], oldest
    # first, from the node's limits file (`set_limit`). A set limit replaces the profile's `power_limit_w` from its
    # time on, and caps the GPU's power (`gpu_w`), so that its energy counter follows the limit.
    caps: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

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

    def cap_at(self, index: int, t: float) -> float | None:
        """The power limit set on GPU `index` through NVML in force at `t`, or None (the profile's)."""
        changes = self.caps.get(index) or []
        i = bisect.bisect_right([at for at, _ in changes], t) - 1
        return changes[i][1] if i >= 0 else None

    def value(self, key: str, index: int, t: float) -> float:
        value = float(self.segment_at(t)[key][index])
        if key in ("gpu_w", "power_limit_w") and (cap := self.cap_at(index, t)) is not None:
            return cap if key == "power_limit_w" else min(value, cap)
        return value

    def energy_j(self, key: str, index: int, t: float) -> float:
        """Integral of `key`[index] (watts) from the first segment to epoch second `t` (GPU power capped by the
        limits set)."""
        segments = self.segments
        caps = self.caps.get(index) if key == "gpu_w" else None
        total = 0.0
        for i, segment in enumerate(segments):
            start = segment["at"]
            if start >= t:
                break
            end = min(segments[i + 1]["at"] if i + 1 < len(segments) else t, t)
            watts = float(segment[key][index])
            if not caps:
                total += watts * (end - start)
                continue
            edges = [start, *(at for at, _ in caps if start < at < end), end]  # the limit changes inside it
            for a, b in zip(edges, edges[1:], strict=False):
                cap = self.cap_at(index, a)
                total += (watts if cap is None else min(watts, cap)) * (b - a)
        return total

    def energy_between_j(self, key: str, index: int, t0: float, t1: float) -> float:
        return self.energy_j(key, index, t1) - self.energy_j(key, index, t0)


_cache: dict[str, tuple[tuple[int, int], Profile]] = {}


def load(path: str | None = None) -> Profile:
    """The profile at `path` (default: $SIMNODE_PROFILE) with its limits file, re-read whenever either changed."""
    path = path or os.environ[ENV]
    stat = os.stat(path)
    try:
        limits = os.stat(f"{path}.limits")
        limits_key = (limits.st_mtime_ns, limits.st_size)
    except FileNotFoundError:
        limits_key = None
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino, limits_key)
    cached = _cache.get(path)
    if cached is None or cached[0] != key:
        with open(path) as handle:
            cached = (key, Profile(json.load(handle), read_caps(path)))
        _cache[path] = cached
    return cached[1]


def read_caps(path: str) -> dict[int, list[tuple[float, float]]]:
    """The limits set on the node's GPUs ($SIMNODE_PROFILE.limits): index -> [(at, watts)], oldest first. The
    file outlives every process of the node, as a real GPU's limit outlives the process that set it."""
    caps: dict[int, list[tuple[float, float]]] = {}
    try:
        with open(f"{path}.limits") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return caps
    for line in lines:
        at, index, watts = line.split()
        caps.setdefault(int(index), []).append((float(at), float(watts)))
    for changes in caps.values():
        changes.sort()
    return caps


def set_limit(index: int, t: float, watts: float) -> None:
    """Record a power limit set on GPU `index` from epoch second `t` on: one short O_APPEND write, atomic."""
    fd = os.open(f"{os.environ[ENV]}.limits", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, f"{t:.6f} {index} {watts:.3f}\n".encode())
    finally:
        os.close(fd)


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
