"""Shared fixtures: real SQLite files and a fresh real Postgres database per test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from db.migrate import upgrade
from db.session import session_factory
from tests.scratch_db import scratch_database

# A short idle baseline keeps tests quick; the 20 s default is for real measurements.
os.environ.setdefault("WATTSWEEP_BASELINE_WINDOW_S", "1")
# Settling and waiting for neighbours bounded to seconds in tests (defaults: 5 s stable, 120 s and 60 s at most).
os.environ.setdefault("WATTSWEEP_BASELINE_SETTLE_WINDOW_S", "0.5")
os.environ.setdefault("WATTSWEEP_BASELINE_SETTLE_TIMEOUT_S", "5")
os.environ.setdefault("WATTSWEEP_BASELINE_NEIGHBOUR_WAIT_S", "2")
# Tests keep their models and query files in pytest's tmp_path: under the temp folder, which the default data
# roots (working directory and HF_HOME) do not include. Subprocesses inherit this; tests of the roots set their own.
os.environ.setdefault("WATTSWEEP_DATA_ROOTS", os.pathsep.join([tempfile.gettempdir(), str(Path(__file__).parents[1])]))

POSTGRES_ADMIN_URL = os.environ.get("WATTSWEEP_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'wattsweep.db'}"
    upgrade(url)
    return url


@pytest.fixture
def postgres_url():
    """A new, migrated Postgres database, dropped after the test."""
    with scratch_database(POSTGRES_ADMIN_URL, "wattsweep_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def sessions(database_url):
    return session_factory(database_url)


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`-n 2`), the tests of one slow group run one after another in one process: a Slurm
    cluster, a set of network namespaces, a chaos run or a vLLM engine at a time, beside the rest of the suite."""
    for item in items:
        for group in ("slurm", "multihost", "chaos", "engines"):
            if item.get_closest_marker(group):
                item.add_marker(pytest.mark.xdist_group(group))
