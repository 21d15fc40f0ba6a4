"""The roles as compose deploys them, on a private cluster: its superuser runs deploy/postgres-init.sh (the
script compose's Postgres runs at first start), the owner migrates without superuser rights, the application
runs a sweep, and each role tries what it must not, with its password, through the pg_hba.conf the script
wrote. The machine's shared Postgres is never reconfigured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from tests.services import PrivatePostgres

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"wattsweep_owner": "ownerpw1", "wattsweep_app": "apppw2", "wattsweep_reader": "readerpw3"}
NODE, NODE_ROLE = "gpu-node-7", "wattsweep_node_gpu_node_7"  # its password: add-node's, set by the fixture
pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (postgresql-client)")

SWEEP = """
name: deployed
defaults: {queries: 2, repetitions: 1, warmup: 0}
carbon: {grid_intensity_g_per_kwh: 100}
tasks:
  fill-mask:
    models: [tiny:bert]
    datasets: [builtin:texts]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with PrivatePostgres() as pg:
        admin = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:  # what the image does for POSTGRES_DB
            connection.execute(text("CREATE DATABASE wattsweep"))
        admin.dispose()
        env = os.environ | {"POSTGRES_USER": "postgres", "POSTGRES_DB": "wattsweep", "PGDATA": str(pg.data),
                            "PGHOST": pg.host, "PGPORT": str(pg.port),
                            "WATTSWEEP_ROLES_SQL": str(ROOT / "migrations" / "roles.sql")}
        env |= {f"WATTSWEEP_{role.removeprefix('wattsweep_').upper()}_PASSWORD": pw for role, pw in PASSWORDS.items()
                if role != NODE_ROLE}
        secret = tmp_path_factory.mktemp("secrets") / "postgres_app_password"  # as compose mounts its secrets
        secret.write_text(env.pop("WATTSWEEP_APP_PASSWORD") + "\n")
        env["WATTSWEEP_APP_PASSWORD_FILE"] = str(secret)
        result = subprocess.run(["bash", str(ROOT / "deploy" / "postgres-init.sh")], env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        # A GPU node's own role, as the README makes it: `wattsweep db add-node --sql` piped into psql as the
        # superuser (still reachable here: the server reads the new pg_hba.conf at its restart).
        made = subprocess.run([sys.executable, "-m", "scheduler", "db", "add-node", NODE, "--sql", "--database-url",
                               f"postgresql://postgres@{pg.host}:{pg.port}/wattsweep"], capture_output=True, text=True,
                              timeout=120, env=env)
        assert made.returncode == 0, made.stderr
        node_line = next(line for line in made.stderr.splitlines() if line.startswith("WATTSWEEP_DATABASE_URL="))
        PASSWORDS[NODE_ROLE] = make_url(node_line.split("=", 1)[1]).password
        psql = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-h", pg.host, "-p", str(pg.port), "-U", "postgres",
                               "-d", "wattsweep"], input=made.stdout, capture_output=True, text=True, timeout=60)
        assert psql.returncode == 0, psql.stderr
        pg.restart()  # the image restarts its server after the init scripts: pg_hba.conf is read again
        yield pg


def url(pg: PrivatePostgres, role: str, database: str = "wattsweep") -> str:
    return f"postgresql+psycopg://{role}:{PASSWORDS[role]}@{pg.host}:{pg.port}/{database}"


def wattsweep(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WATTSWEEP_DATABASE_URL"}
    env |= {"WATTSWEEP_DATABASE_URL": database_url, "HF_HUB_OFFLINE": "1", "WATTSWEEP_BASELINE_WINDOW_S": "0"}
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def migrated(cluster, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deployed")
    result = wattsweep("db", "upgrade", database_url=url(cluster, "wattsweep_owner"), cwd=folder)
    assert result.returncode == 0, result.stderr
    (folder / "sweep.yaml").write_text(SWEEP)
    result = wattsweep("run", "sweep.yaml", database_url=url(cluster, "wattsweep_app"), cwd=folder)
    assert result.returncode == 0, result.stderr
    return cluster


def error_of(database_url: str, *statements: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
            for statement in statements:
                connection.execute(text(statement))
        return str(caught.value.orig)
    finally:
        engine.dispose()


def test_no_wattsweep_role_is_a_superuser_and_the_owner_owns_the_schema(migrated):
    engine = create_engine(url(migrated, "wattsweep_owner"))
    with engine.connect() as connection:
        assert not connection.execute(text(
            "SELECT bool_or(rolsuper OR rolcreaterole OR rolcreatedb) FROM pg_roles WHERE rolname LIKE 'wattsweep%'"
        )).scalar()
        owners = set(connection.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"))
                     .scalars())
        assert connection.execute(text("SELECT count(*) FROM measurements WHERE phase = 'query'")).scalar() == 1
    engine.dispose()
    assert owners == {"wattsweep_owner"}


@pytest.mark.parametrize("role", [*PASSWORDS, NODE_ROLE])
@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_wattsweep_roles_reach_the_wattsweep_database_only(migrated, role, database):
    engine = create_engine(url(migrated, role, database))
    with pytest.raises(OperationalError, match="pg_hba.conf rejects connection"):
        engine.connect()
    engine.dispose()


def test_reader_is_read_only_through_and_through(migrated):
    reader = url(migrated, "wattsweep_reader")
    engine = create_engine(reader)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM v_runs")).scalar() == 1
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "2min"
    engine.dispose()
    assert "permission denied to create temporary tables" in error_of(
        reader, "SET default_transaction_read_only = off", "SET transaction_read_only = off",
        "CREATE TEMP TABLE mine AS SELECT * FROM runs")
    assert "permission denied for function pg_advisory_lock" in error_of(
        reader, "SELECT pg_advisory_lock(hashtext('wattsweep-host:node7'))")
    assert "permission denied" in error_of(reader, "SET transaction_read_only = off", "DELETE FROM runs")


def test_reader_connection_limit(migrated):
    engines = [create_engine(url(migrated, "wattsweep_reader"), pool_size=1) for _ in range(11)]
    try:
        held = [engine.connect() for engine in engines[:10]]
        with pytest.raises(OperationalError, match="too many connections for role"):
            engines[10].connect()
        for connection in held:
            connection.close()
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO PROGRAM 'id'", "CREATE TABLE mine (id int)", "DROP TABLE runs",
    "CREATE TEMP TABLE mine (id int)", "UPDATE alembic_version SET version_num = 'x'",
])
def test_application_does_rows_only(migrated, statement):
    message = error_of(url(migrated, "wattsweep_app"), statement)
    assert "permission denied" in message or "must be" in message


def test_owner_is_no_superuser(migrated):
    assert "must be superuser" in error_of(url(migrated, "wattsweep_owner"), "COPY (SELECT 1) TO PROGRAM 'id'")
    assert "permission denied for function" in error_of(url(migrated, "wattsweep_owner"), "SELECT pg_advisory_lock(1)")


# Finding 9: the superuser was reachable over the network by password.
@pytest.mark.parametrize("database", ["wattsweep", "postgres"])
def test_the_superuser_is_refused_over_the_network(migrated, database):
    engine = create_engine(f"postgresql+psycopg://postgres@{migrated.host}:{migrated.port}/{database}")
    with pytest.raises(OperationalError, match='pg_hba.conf rejects connection for host .*user "postgres"'):
        engine.connect()
    engine.dispose()


def test_a_node_role_logs_in_with_its_password_and_does_a_workers_part_only(migrated):
    node = url(migrated, NODE_ROLE)
    engine = create_engine(node)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT session_user")).scalar() == NODE_ROLE
        assert connection.execute(text("SELECT count(*) FROM runs")).scalar() == 1
    engine.dispose()
    assert "permission denied" in error_of(node, "DELETE FROM measurements")
    assert "permission denied" in error_of(node, "UPDATE measurements SET energy_kwh = 0")
