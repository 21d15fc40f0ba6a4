"""What a worker measures on: hardware and software, recorded once per worker."""

from __future__ import annotations

import os
import platform
import re
import socket
from importlib import metadata
from typing import Any

LIBRARIES = ("torch", "transformers", "diffusers", "codecarbon", "wattsweep")


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_total_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2)
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect_inventory(gpus: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Host facts without importing torch (versions come from package metadata); `gpus`: the worker's, by NVML."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_total_gb": _ram_total_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in LIBRARIES},
        "gpu": gpus[0] if gpus else None,  # name, memory_gb, driver, cuda, index, uuid; None on CPU workers
        "gpus": gpus or [],  # a group's every GPU, in PCI order (one-GPU workers: that one)
    }


BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_HOST_ID = re.compile(r"^[\w.:\-]{1,100}$")


class HostIdentityError(ValueError):
    """WATTSWEEP_HOST_ID is unusable, or the kernel has no boot id; the message is one line."""


def host_identity(explicit: str | None = None, boot_id_path: str = BOOT_ID_PATH) -> str:
    """Which host this process runs on, for co-location: one kernel = one host.

    Containers on one node share the kernel's boot id (it is not namespaced),
    whatever their hostnames; two nodes never share one. `explicit`
    (WATTSWEEP_HOST_ID) overrides it, for the rare case where that is wrong.
    """
    if explicit is not None:
        if not _HOST_ID.match(explicit):
            raise HostIdentityError(f"WATTSWEEP_HOST_ID={explicit!r}: use 1 to 100 letters, digits, '.', ':', "
                                    "'_' or '-'")
        return explicit
    try:
        with open(boot_id_path) as handle:
            boot_id = handle.read().strip()
    except OSError as error:
        raise HostIdentityError(f"cannot read {boot_id_path} ({error.strerror}): set WATTSWEEP_HOST_ID to a name "
                                "shared by every worker of this host") from None
    return f"boot:{boot_id}"


def display_name(node_name: str | None = None) -> str:
    """The node's name for people (WATTSWEEP_NODE_NAME, else the hostname): never used to find co-location."""
    return node_name or socket.gethostname()
