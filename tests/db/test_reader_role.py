"""The read-only role (Postgres): it reads every table and view, and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from db.session import session_factory
from db.views import VIEW_COLUMNS
from tests.results_data import SeedModel, seed_sweep


@pytest.fixture
def reader(postgres_url):
    with session_factory(postgres_url).begin() as session:
        seed_sweep(session, name="readable", models=[SeedModel("fill-mask", "hub:org/m", [0.01, 0.02])])
    engine = create_engine(make_url(postgres_url).set(username="wattsweep_reader", password=None))
    yield engine
    engine.dispose()


def test_reader_reads_tables_and_views(reader):
    with reader.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar() == "wattsweep_reader"
        for view in VIEW_COLUMNS:
            connection.execute(text(f"SELECT * FROM {view}")).all()
        for table in ("sweeps", "jobs", "runs", "measurements", "workers", "idle_baselines"):
            connection.execute(text(f"SELECT * FROM {table}")).all()
        row = connection.execute(text("SELECT runs, kwh_per_1k_mean FROM v_task_summary")).one()
    assert row.runs == 2 and row.kwh_per_1k_mean == pytest.approx(0.015)


@pytest.mark.parametrize("statement", [
    "INSERT INTO sweeps (name, spec, hardware_class, mode, cancelled, created_at) "
    "VALUES ('x', '{}', 'cpu', 'local', false, now())",
    "UPDATE measurements SET energy_kwh = 0",
    "DELETE FROM runs",
    "TRUNCATE jobs CASCADE",
    "CREATE TABLE mine (id int)",
    "DROP VIEW v_runs",
])
def test_reader_writes_nothing(reader, statement):
    with reader.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text(statement))
    assert "permission denied" in str(caught.value) or "read-only transaction" in str(caught.value)


def test_reader_can_read_tables_made_later_and_role_survives_more_databases(postgres_url, reader):
    # A later migration's table, created by the migrating role: readable through the default privileges.
    owner = create_engine(postgres_url)
    with owner.begin() as connection:
        connection.execute(text("CREATE TABLE later_results (id int)"))
        connection.execute(text("INSERT INTO later_results VALUES (1)"))
    owner.dispose()
    with reader.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM later_results")).scalar() == 1
        # Read-only even where a grant would allow more: every transaction of the role is read-only.
        assert connection.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
