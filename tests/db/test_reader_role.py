"""The roles on a migrated scratch database (shared Postgres, migrations run as a superuser), each tried as the
role itself would: the reader reads and nothing else, the application writes rows and nothing else.

What needs a cluster of its own (pg_hba.conf, passwords, an owner that is not a superuser, a connection
limit) is in test_roles_deployed.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from db.results.views import VIEW_COLUMNS
from db.session import session_factory
from tests.results_data import SeedModel, seed_sweep

DENIED = ("permission denied", "read-only transaction", "must be owner", "must be superuser",
          "only roles with privileges of the", "must be able to SET ROLE")


def as_role(url: str, role: str):
    return create_engine(make_url(url).set(username=role, password=None))


@pytest.fixture
def reader(postgres_url):
    with session_factory(postgres_url).begin() as session:
        seed_sweep(session, name="readable", models=[SeedModel("fill-mask", "hub:org/m", [0.01, 0.02])])
    engine = as_role(postgres_url, "wattsweep_reader")
    yield engine
    engine.dispose()


@pytest.fixture
def app(postgres_url):
    engine = as_role(postgres_url, "wattsweep_app")
    yield engine
    engine.dispose()


def refused(engine, *statements: str) -> str:
    """Run `statements` in one transaction as the engine's role; the error they end in (they must end in one)."""
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        for statement in statements:
            connection.execute(text(statement))
    message = str(caught.value.orig)
    assert any(reason in message for reason in DENIED), message
    return message


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
    refused(reader, statement)


def test_reader_writes_nothing_even_after_turning_read_only_off(reader):
    # The first fence is per transaction and the role may lower it; the grants are the second.
    for statement in ("UPDATE measurements SET energy_kwh = 0", "CREATE TEMP TABLE mine (id int)",
                      "CREATE TEMP TABLE mine AS SELECT * FROM runs", "CREATE TABLE mine (id int)"):
        message = refused(reader, "SET default_transaction_read_only = off", "SET transaction_read_only = off",
                          statement)
        assert "read-only transaction" not in message  # refused by a grant, not by the setting just lowered


def test_reader_cannot_take_a_hosts_advisory_lock(reader):
    # A held host lock stalls every worker of that host while their heartbeats look fresh.
    for call in ("pg_advisory_lock(hashtext('wattsweep-host:node7'))", "pg_advisory_xact_lock(1)",
                 "pg_try_advisory_lock(1)", "pg_advisory_lock_shared(1, 2)", "pg_advisory_unlock_all()"):
        assert "permission denied for function" in refused(reader, f"SELECT {call}")


def test_reader_has_a_statement_timeout_a_temp_file_limit_and_a_connection_limit(reader):
    with reader.connect() as connection:
        settings = {name: connection.execute(text(f"SHOW {name}")).scalar()
                    for name in ("statement_timeout", "temp_file_limit", "default_transaction_read_only")}
        limit = connection.execute(text("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")).scalar()
    assert settings == {"statement_timeout": "2min", "temp_file_limit": "1GB", "default_transaction_read_only": "on"}
    assert limit == 10


def test_reader_can_read_tables_made_later(postgres_url, reader):
    # A later migration's table, created by the migrating role: readable through the default privileges.
    owner = create_engine(postgres_url)
    with owner.begin() as connection:
        connection.execute(text("CREATE TABLE later_results (id int)"))
        connection.execute(text("CREATE VIEW v_later AS SELECT id FROM later_results"))
        connection.execute(text("INSERT INTO later_results VALUES (1)"))
    owner.dispose()
    with reader.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM later_results")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM v_later")).scalar() == 1


def test_application_writes_rows_and_takes_advisory_locks(app, postgres_url):
    # The scheduler's role: the plan's rows and transaction locks. Deleting results is the owner's alone, and
    # tables made later are written only where their migration grants it (test_roles_by_duty.py).
    with app.begin() as connection:
        sweep_id = connection.execute(text(
            "INSERT INTO sweeps (name, spec, hardware_class, mode, cancelled, exclusive, created_at) "
            "VALUES ('app', '{}', 'cpu', 'distributed', false, false, now()) RETURNING id")).scalar()
        connection.execute(text("UPDATE sweeps SET cancelled = true WHERE id = :id"), {"id": sweep_id})
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('wattsweep-host:node7'))"))


@pytest.mark.parametrize("statement", [
    "CREATE TABLE mine (id int)",
    "CREATE TEMP TABLE mine (id int)",
    "DROP TABLE runs",
    "ALTER TABLE runs ADD COLUMN x int",
    "TRUNCATE runs",
    "CREATE VIEW mine AS SELECT 1",
    "UPDATE alembic_version SET version_num = '0001'",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "CREATE ROLE intruder",
])
def test_application_does_rows_only(app, statement):
    refused(app, statement)
