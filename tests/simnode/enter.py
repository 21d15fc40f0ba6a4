"""Run a command on the simulated node: `unshare -m [-u] python enter.py POWERCAP [--hostname H] -- CMD...`.

Inside a private mount namespace (created by `unshare -m`; needs root, as the
test machine has), the fake powercap tree is mounted at /sys/class/powercap,
the path the real CodeCarbon reads, so product code keeps reading the real
path and only this process tree sees the fake. On a host without a
/sys/class/powercap directory (a VM without RAPL) /sys/class is covered by a
tmpfs holding its original entries again (bind mounts) plus the fake. With
`--hostname` (and `unshare -u`), the command also gets its own UTS
namespace and hostname: one kernel, another name, as containers on one node.
Nothing is visible outside the namespace, and nothing is left behind.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import tempfile

MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                         data.encode() if data else None)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def mount_powercap(fake: str) -> None:
    if os.path.isdir("/sys/class/powercap"):
        _mount(fake, "/sys/class/powercap", flags=MS_BIND)
    else:
        original = tempfile.mkdtemp(prefix="simnode-class-")
        _mount("/sys/class", original, flags=MS_BIND)
        _mount("tmpfs", "/sys/class", "tmpfs", 0, "mode=755")
        for entry in os.listdir(original):
            os.mkdir(f"/sys/class/{entry}")
            _mount(f"{original}/{entry}", f"/sys/class/{entry}", flags=MS_BIND)
        os.mkdir("/sys/class/powercap")
        _mount(fake, "/sys/class/powercap", flags=MS_BIND)
    if os.path.isdir("/sys/devices/virtual/powercap"):  # CodeCarbon scans it too: hide a real RAPL tree
        _mount(fake, "/sys/devices/virtual/powercap", flags=MS_BIND)


def main(argv: list[str]) -> None:
    fake, rest = argv[0], argv[1:]
    hostname = None
    if rest[:1] == ["--hostname"]:
        hostname, rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    mount_powercap(fake)
    if hostname:
        socket.sethostname(hostname)
    os.execvp(rest[0], rest)


if __name__ == "__main__":
    main(sys.argv[1:])
