"""Real Slurm for the tests in this folder: one test-owned cluster per session (tests/slurm/daemons.py).

The database, broker, queue and model copies come from the distributed tests'
`cluster` fixture; here its commands also find the Slurm cluster (SLURM_CONF),
and the jobs sbatch starts inherit that environment, as a user's would.
"""

from __future__ import annotations

import pytest

from tests.distributed.conftest import cluster, redis_db, tiny_bert_dir  # noqa: F401  (fixtures used here)
from tests.slurm.daemons import SlurmCluster, slurm_missing


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    if reason := slurm_missing():
        pytest.skip(reason)
    daemons = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        daemons.start()
        yield daemons
    finally:
        daemons.stop()


@pytest.fixture
def slurm_cluster(cluster, slurm):  # noqa: F811
    cluster.env |= slurm.env
    return cluster
