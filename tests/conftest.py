"""Shared fixtures: real SQLite files and a fresh real Postgres database per test, each a copy of one migrated
once per test process (migrating takes 1-2 s, a copy milliseconds; tests/db/test_scratch_template.py checks that a
copy and a database migrated from scratch are the same)."""

from __future__ import annotations

import os
import sqlite3
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


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once per test process; tests get copies (`sqlite_url`, `migrated_sqlite`)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "wattsweep.db"
    upgrade(f"sqlite:///{path}")
    return path


def copy_sqlite(source: Path, target: Path) -> str:
    """`source` copied to `target` with SQLite's backup API (consistent whatever its WAL holds); its URL."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{target}"


@pytest.fixture
def migrated_sqlite(migrated_sqlite_template):
    """`migrated_sqlite(path)`: a migrated SQLite database at `path` (a copy of the template); its URL."""
    return lambda path: copy_sqlite(migrated_sqlite_template, Path(path))


@pytest.fixture
def sqlite_url(tmp_path, migrated_sqlite) -> str:
    return migrated_sqlite(tmp_path / "wattsweep.db")


@pytest.fixture
def postgres_url():
    """A new, migrated Postgres database (a clone of this process's migrated template), dropped after the test."""
    with scratch_database(POSTGRES_ADMIN_URL, "wattsweep_test", template=True, drop_later=True) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def sessions(database_url):
    return session_factory(database_url)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into node ids
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`-n 2`), the tests of one slow group run one after another in one process: a Slurm
    cluster, a set of network namespaces, a chaos run or a vLLM engine at a time, beside the rest of the suite."""
    for item in items:
        for group in ("slurm", "multihost", "chaos", "engines"):
            if item.get_closest_marker(group):
                item.add_marker(pytest.mark.xdist_group(group))
