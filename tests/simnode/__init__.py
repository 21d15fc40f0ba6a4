"""A simulated GPU node for tests: fake NVML, fake RAPL, fake GPU device files; everything else real.

This machine has no GPU and no RAPL. The simulated node fakes exactly those
and nothing above them: the real CodeCarbon code reads the fake `pynvml`
(tests/simnode/fakelib, put first on the path of the node's processes) and
the fake powercap tree (mounted at /sys/class/powercap in a private mount
namespace, so product code reads the real path). Counters follow a power
profile, one JSON file read alike by every process of the node; the test
changes it while workers run.

Use from another test::

    from tests.simnode import SimNode

    with SimNode(tmp_path / "node", gpus=8) as node:          # starts the RAPL updater
        env = node.env(os.environ)                             # PYTHONPATH, PATH, SIMNODE_PROFILE, ...
        argv = node.wrap(["wattsweep", "worker", "--gpu", "3", "--queue", q], hostname="n1")
        worker = subprocess.Popen(argv, env=env)               # runs inside the node's namespace
        t = node.set_power(gpu_w={3: 250.0}, package_w=[120.0, 90.0])   # from t (epoch s) on
        ...
        node.gpu_energy_j(3, t0, t1)                           # what GPU 3 drew: the truth to compare with
        node.power_limit_w(3), node.power_limit_sets(3)        # limits set through NVML (they cap gpu_w)
        node.gpu_counter_reads(3)                              # (t, mJ) of each read of GPU 3's counter
        node.host_energy_j(t0, t1)                             # CPU packages; node.dram_energy_j likewise
        node.host_energy_read_j(t0, t1)                        # ... as readers at t0 and t1 saw the counters

`node.dev_dir` holds fake device files (nvidia0..N-1, nvidiactl, nvidia-uvm;
character devices with NVIDIA's major number 195, which open nothing) for a
Slurm gres.conf (`File=<dev_dir>/nvidia[0-7]`). `node.gpus` lists the
devices in PCI (NVML) order with name, uuid, pci_bus_id and `cuda_rank`
(their position in CUDA's default fastest-first order, which differs: the
node mixes two GPU models, the faster ones on the higher PCI buses).
`mig={5: 3}` gives GPU 5 three MIG slices (`node.gpus[5]["mig"]`).
`SimNode.available()` says whether this machine can run it (root, unshare).
A process started with `wrap(..., hostname=...)` also gets its own UTS
namespace: another hostname, the same kernel (one boot id), as containers.

Workers on the node run with WATTSWEEP_SIMULATED_GPU=1 (set by `env`): torch
has no CUDA here, so a `--gpu N` worker runs its model on the CPU while it
meters GPU N through NVML; its windows are flagged `simulated-gpu`.
"""

from __future__ import annotations

import bisect
import copy
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FAKELIB, FAKEBIN = HERE / "fakelib", HERE / "fakebin"
from tests.simnode.fakelib import simnode_profile  # noqa: E402 - not on this process's path: its pynvml is real

# Two models on one node, slower ones on the lower PCI buses: CUDA's default order (fastest first) differs from
# NVML's (PCI bus order), which is the trap CUDA_DEVICE_ORDER=PCI_BUS_ID avoids.
# (name, memory GB, max power limit W, max SM clock MHz, min power limit W): nvidia-smi -q's figures.
MODELS = [("NVIDIA A100-SXM4-40GB", 40, 400.0, 1410, 100.0), ("NVIDIA H100 80GB HBM3", 80, 700.0, 1980, 200.0)]
CHANGE_LEAD_S = 0.3  # a profile change takes effect this far in the future: no process has read past it yet


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the simulated node needs root (a private mount namespace)"
    if shutil.which("unshare") is None:
        return False, "the simulated node needs util-linux unshare"
    probe = subprocess.run(["unshare", "-m", "-u", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"unshare -m -u refused: {probe.stderr.strip()}"
    return True, ""


class SimNode:
    available = staticmethod(available)

    def __init__(self, folder: str | Path, *, gpus: int = 8, mig: Mapping[int, int] | None = None,
                 nvml_update_s: float = 0.1, rapl_range_uj: int = 2**32, package_w: list[float] | None = None,
                 dram_w: list[float] | None = None, gpu_w: list[float] | None = None, seed: str = "node0",
                 power_limit_permission: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.profile_path = self.folder / "profile.json"
        self.powercap_dir = self.folder / "powercap"
        self.dev_dir = self.folder / "dev"
        self._daemon: subprocess.Popen | None = None
        devices = []
        for index in range(gpus):
            name, memory_gb, limit_w, clock, min_limit_w = MODELS[0] if index < gpus // 2 else MODELS[1]
            device = {
                "name": name, "uuid": f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'simnode/{seed}/gpu{index}')}",
                "pci_bus_id": f"00000000:{0x07 + 0x10 * index:02X}:00.0", "memory_bytes": memory_gb * 2**30,
                "energy_offset_mj": 10**9 * (index + 1), "max_power_w": limit_w, "min_power_w": min_limit_w,
                "max_sm_clock_mhz": clock,
                "mig": [],
            }
            for slice_index in range((mig or {}).get(index, 0)):
                slice_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"{device['uuid']}/{slice_index}")
                device["mig"].append({"uuid": f"MIG-{slice_uuid}", "profile": "1g.10gb"})
            devices.append(device)
        fastest_first = sorted(range(gpus), key=lambda i: (-devices[i]["max_sm_clock_mhz"], i))
        for rank, index in enumerate(fastest_first):
            devices[index]["cuda_rank"] = rank
        first = {
            "at": time.time() - 1.0,
            "gpu_w": gpu_w or [50.0 + 5.0 * i for i in range(gpus)],  # distinct: metering the wrong GPU shows
            "power_limit_w": [d["max_power_w"] for d in devices],
            "temperature_c": [34.0 + i for i in range(gpus)],
            "sm_clock_mhz": [d["max_sm_clock_mhz"] for d in devices],
            "throttle_reasons": [0x1] * gpus,  # GPU idle
            "utilization_pct": [0] * gpus,
            "package_w": package_w or [70.0, 55.0],
            "dram_w": dram_w or [9.0, 8.0],
        }
        self.data: dict[str, Any] = {
            "gpus": devices, "nvml_update_s": nvml_update_s, "driver": "550.54.15", "cuda_driver": 12040,
            "rapl": {"max_energy_range_uj": rapl_range_uj, "max_power_uw": 350 * 10**6},
            "segments": [first],
            # False plays a worker without the right to set power limits (not root, no SYS_ADMIN): NVML refuses.
            "power_limit_permission": power_limit_permission,
        }

    # -- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> SimNode:
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        simnode_profile.save(str(self.profile_path), self.data)
        self._make_devices()
        self._daemon = subprocess.Popen([sys.executable, str(HERE / "rapl_daemon.py"), str(self.profile_path),
                                         str(self.powercap_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (self.powercap_dir / ".ready").exists():
            if self._daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"RAPL updater did not start: {self._daemon.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._daemon is not None and self._daemon.poll() is None:
            self._daemon.send_signal(signal.SIGTERM)
            try:
                self._daemon.wait(10)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait()
        self._daemon = None

    def __enter__(self) -> SimNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _make_devices(self) -> None:
        self.dev_dir.mkdir(exist_ok=True)
        names = [(f"nvidia{i}", i) for i in range(len(self.gpus))] + [("nvidiactl", 255), ("nvidia-uvm", 254)]
        for name, minor in names:
            path = self.dev_dir / name
            if not path.exists():
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, minor))

    # -- what processes of the node need ------------------------------------------------------------------------

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) plus what makes a process part of this node."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join([str(FAKELIB), *filter(None, [env.get("PYTHONPATH")])])
        env["PATH"] = os.pathsep.join([str(FAKEBIN), env.get("PATH", "/usr/bin:/bin")])
        env[simnode_profile.ENV] = str(self.profile_path)
        env["WATTSWEEP_SIMULATED_GPU"] = "1"
        return env

    def wrap(self, argv: list[str], *, hostname: str | None = None) -> list[str]:
        """`argv` run inside the node's mount namespace (and, with `hostname`, its own UTS namespace)."""
        flags = ["-m", "-u"] if hostname else ["-m"]
        enter = [sys.executable, str(HERE / "enter.py"), str(self.powercap_dir)]
        return ["unshare", *flags, *enter, *(["--hostname", hostname] if hostname else []), "--", *argv]

    # -- the profile --------------------------------------------------------------------------------------------

    @property
    def gpus(self) -> list[dict[str, Any]]:
        return self.data["gpus"]

    def cuda_fastest_first(self) -> list[int]:
        """Physical (PCI) indices in the order CUDA numbers them when CUDA_DEVICE_ORDER is not set."""
        return sorted(range(len(self.gpus)), key=lambda i: self.gpus[i]["cuda_rank"])

    def set_power(self, at: float | None = None, **changes: Any) -> float:
        """From epoch second `at` (default: in CHANGE_LEAD_S) on, change profile values; returns `at`.

        Each change is a list (one value per GPU or socket) or a {index: value} dict: gpu_w, power_limit_w,
        temperature_c, sm_clock_mhz, throttle_reasons, utilization_pct, package_w, dram_w.
        """
        last = self.data["segments"][-1]
        at = max(at if at is not None else time.time() + CHANGE_LEAD_S, last["at"] + 1e-6)
        segment = copy.deepcopy(last) | {"at": at}
        for key, value in changes.items():
            if key not in last:
                raise KeyError(f"unknown profile value {key!r}; known: {', '.join(sorted(set(last) - {'at'}))}")
            if isinstance(value, Mapping):
                for index, item in value.items():
                    segment[key][int(index)] = item
            else:
                segment[key] = list(value)
        self.data["segments"].append(segment)
        simnode_profile.save(str(self.profile_path), self.data)
        return at

    def _profile(self) -> simnode_profile.Profile:
        return simnode_profile.Profile(self.data, simnode_profile.read_caps(str(self.profile_path)))

    def power_limit_w(self, index: int, t: float | None = None) -> float:
        """GPU `index`'s power limit at epoch second `t` (default now): a limit set through NVML, or the profile's."""
        return self._profile().value("power_limit_w", index, time.time() if t is None else t)

    def power_limit_sets(self, index: int) -> list[tuple[float, float]]:
        """(epoch second, watts) of every limit set on GPU `index` through the fake NVML, oldest first."""
        return simnode_profile.read_caps(str(self.profile_path)).get(index, [])

    def gpu_energy_j(self, index: int, t0: float, t1: float) -> float:
        return self._profile().energy_between_j("gpu_w", index, t0, t1)

    def gpu_counter_reads(self, index: int, host: str | None = None) -> list[tuple[float, int]]:
        """(epoch second, mJ) of every read of GPU `index`'s energy counter (by processes with hostname `host`),
        oldest first: the fake NVML logs each one."""
        path = Path(f"{self.profile_path}.reads")
        reads = []
        for line in path.read_text().splitlines() if path.exists() else []:
            reader, gpu, t, value = line.split()
            if int(gpu) == index and host in (None, reader):
                reads.append((float(t), int(value)))
        return sorted(reads)

    def gpu_counter_window(self, index: int, started: float, ended: float, host: str | None = None,
                           reads: list[tuple[float, int]] | None = None) -> tuple[float, float, float]:
        """(first read, last read, joules between them) of GPU `index`'s counter reads within [started, ended].

        A window's stamps are CodeCarbon's clock just before its first read and just after its last, so this is
        exactly what a window that metered this GPU measured, however long a loaded machine took between clock
        and read (the profile over the stamps is only an upper bound). `reads`: gpu_counter_reads, if at hand."""
        inside = [(t, mj) for t, mj in (reads if reads is not None else self.gpu_counter_reads(index, host))
                  if started <= t <= ended]
        if len(inside) < 2:
            raise AssertionError(f"no reads of GPU {index}'s counter opened and closed [{started:.3f}, {ended:.3f}]")
        (first_t, first_mj), (last_t, last_mj) = inside[0], inside[-1]
        return first_t, last_t, (last_mj - first_mj) / 1000

    def host_energy_j(self, t0: float, t1: float) -> float:
        """CPU packages (what CodeCarbon's RAPL reads), all sockets."""
        profile = self._profile()
        sockets = range(len(self.data["segments"][0]["package_w"]))
        return sum(profile.energy_between_j("package_w", s, t0, t1) for s in sockets)

    def rapl_updates(self) -> list[float]:
        """Epoch seconds of every update of the fake RAPL counters, oldest first (the updater logs each)."""
        path = self.powercap_dir / ".updates"
        return [float(line) for line in path.read_text().split()] if path.exists() else []

    def host_energy_read_j(self, t0: float, t1: float, updates: list[float] | None = None) -> float:
        """What readers of the package counters at `t0` and `t1` saw them advance: the counters move only when the
        updater writes them (every 10 ms), so a reading holds the energy up to the last update before it.
        `host_energy_j` is the profile's integral, which a reading misses by up to an update period's energy at each
        end. `updates`: rapl_updates, if at hand."""
        updates = updates if updates is not None else self.rapl_updates()

        def last_update(t: float) -> float:
            i = bisect.bisect_right(updates, t) - 1
            if i < 0:
                raise AssertionError(f"no RAPL update before {t:.3f}")
            return updates[i]

        return self.host_energy_j(last_update(t0), last_update(t1))

    def dram_energy_j(self, t0: float, t1: float) -> float:
        profile = self._profile()
        sockets = range(len(self.data["segments"][0]["dram_w"]))
        return sum(profile.energy_between_j("dram_w", s, t0, t1) for s in sockets)

    def rapl_wrap_s(self, at_w: float | None = None) -> float:
        """Seconds one package counter takes to wrap at `at_w` watts (default: its current power)."""
        watts = at_w if at_w is not None else self.data["segments"][-1]["package_w"][0]
        return self.data["rapl"]["max_energy_range_uj"] / 1e6 / watts
