"""Worker "hosts" in network namespaces on a private test subnet: real network isolation on one machine.

    with TestNetwork(hosts=2) as net:          # a bridge at net.head (10.x.y.1) and one namespace per host
        PrivatePostgres(host=net.head, allow=net.cidr)   # services listen on the head address only
        argv = net.run_in(1, ["python", "-m", "scheduler", "worker", ...])
        net.cut(1); net.restore(1)             # `ip link set ... down/up` on host 1's cable

Each namespace holds a loopback and one end of a veth pair whose other end is
a port of the test's bridge; the bridge carries the head address, where the
test's private Postgres and Redis listen. A namespace has no default route,
so its processes reach the head address and the other test hosts and nothing
else: not the machine's 127.0.0.1 services, not the outside world. Cutting a
host unplugs its bridge port: its packets are dropped (no reset), as on a
real network partition, until the link comes back.

The subnet is a random 10.x.y.0/24 that no route or address of the machine
uses; names carry a random tag (several test sessions may run at once).
Everything created is removed on exit, namespaces and bridge included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import shutil
import subprocess
import uuid


class NetworkError(RuntimeError):
    pass


def netns_missing() -> str | None:
    """Why this machine cannot make test namespaces, or None."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (.ci/run installs it)"
    probe = f"wsprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, namespace: str | None = None) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in _ip("-4", "route", "show", "table", "all").splitlines() + _ip("-4", "-o", "addr").splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if "/" in word or word[0].isdigit():
                    used.append(ipaddress.ip_network(word, strict=False))
    return used


def free_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    rng = rng or random.SystemRandom()
    used = _used_networks()
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{rng.randrange(200, 255)}.{rng.randrange(0, 256)}.0/24")
        if not any(candidate.overlaps(other) for other in used):
            return candidate
    raise NetworkError("no free 10.x.y.0/24 subnet for the test network")


class TestNetwork:
    __test__ = False  # not a pytest test class

    def __init__(self, hosts: int) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = free_subnet()
        self.cidr = str(self.subnet)
        self.head = str(self.subnet.network_address + 1)
        self.bridge = f"wsbr{self.tag}"
        self.namespaces = [f"ws{self.tag}h{i}" for i in range(hosts)]
        self.addresses = [str(self.subnet.network_address + 10 + i) for i in range(hosts)]
        self._host_ends = [f"ws{self.tag}a{i}" for i in range(hosts)]
        self._created: list[tuple[str, str]] = []  # ("netns" | "link", name), to remove in reverse

    def create(self) -> TestNetwork:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._created.append(("link", self.bridge))
            _ip("addr", "add", f"{self.head}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for namespace, host_end, address in zip(self.namespaces, self._host_ends, self.addresses, strict=True):
                _ip("netns", "add", namespace)
                self._created.append(("netns", namespace))
                _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", namespace)
                self._created.append(("link", host_end))
                _ip("link", "set", host_end, "master", self.bridge)
                _ip("link", "set", host_end, "up")
                _ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0", namespace=namespace)
                _ip("link", "set", "eth0", "up", namespace=namespace)
                _ip("link", "set", "lo", "up", namespace=namespace)
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        """Remove what `create` made (a namespace takes its veth end, and so the pair, with it)."""
        for kind, name in reversed(self._created):
            if kind == "netns":
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
            else:
                subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
        self._created.clear()

    def __enter__(self) -> TestNetwork:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.destroy()

    def run_in(self, host: int, argv: list[str]) -> list[str]:
        """`argv` run inside host `host`'s namespace (`ip netns exec` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def cut(self, host: int) -> None:
        """Unplug host `host`: its packets are dropped until `restore`."""
        _ip("link", "set", self._host_ends[host], "down")

    def restore(self, host: int) -> None:
        _ip("link", "set", self._host_ends[host], "up")
