"""Worker hosts in network namespaces, with the head node's Postgres and Redis on the test's own subnet.

One test network (tests/multihost/netns.py) and one private Postgres and
Redis on its head address per module (tests/services.py): the machine's
shared services listen on 127.0.0.1, which no namespace can reach, and are
never reconfigured. Each test gets a fresh migrated database and its own
Redis database number. Workers run inside the namespaces with their own
WATTSWEEP_HOST_ID (all namespaces share this machine's kernel, hence its boot
id); `wattsweep` commands of the head node (submit, reconcile) run outside.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from tests.distributed.conftest import Cluster, WorkerProcess, tiny_bert_dir  # noqa: F401  (fixture used here)
from tests.multihost.netns import TestNetwork, netns_missing
from tests.scratch_db import scratch_database
from tests.services import PrivatePostgres, PrivateRedis

HOSTS = 2
_redis_numbers = itertools.cycle(range(16))


@pytest.fixture(scope="module")
def network():
    if reason := netns_missing():
        pytest.skip(reason)
    with TestNetwork(hosts=HOSTS) as net:
        yield net


@pytest.fixture(scope="module")
def head(network):
    # A host cut off inside a transaction would hold its row locks until Postgres drops the session: a lab's
    # Postgres should set this too (README), or a partitioned worker can stall a job for hours.
    settings = {"idle_in_transaction_session_timeout": "10s"}
    with PrivatePostgres(host=network.head, allow=network.cidr, settings=settings) as pg, \
            PrivateRedis(host=network.head) as broker:
        yield pg, broker


class HostsCluster(Cluster):
    """The distributed tests' cluster, with workers placed on the test network's hosts."""

    def __init__(self, database_url: str, broker_url: str, folder, network: TestNetwork) -> None:
        super().__init__(database_url, broker_url, folder)
        self.network = network
        self.flush_broker()

    def host_id(self, host: int) -> str:
        return f"{self.network.tag}-host{host}"

    def start_worker_on(self, host: int, name: str) -> WorkerProcess:
        env = self.env | {"WATTSWEEP_HOST_ID": self.host_id(host), "WATTSWEEP_NODE_NAME": f"host{host}"}
        worker_id = f"{name}@host{host}"
        argv = self.network.run_in(host, [sys.executable, "-m", "scheduler", "worker", "--device", "cpu",
                                          "--queue", self.queue, "--name", worker_id])
        log_path = self.folder / f"{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(argv, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return WorkerProcess(worker_id, process, log_path)


@pytest.fixture
def hosts(network, head, tmp_path):
    pg, broker = head
    with scratch_database(pg.admin_url) as url:
        cluster = HostsCluster(url, broker.url(next(_redis_numbers)), tmp_path, network)
        try:
            yield cluster
        finally:
            cluster.close()
            for host in range(HOSTS):
                network.restore(host)  # a failed test may leave a host cut off
