"""Roles by what each does (migration 0020, migrations/roles.sql), each tried as the role that tried it in issue 23:
the reader stores no large objects, a GPU node (its own login role, a member of wattsweep_worker) does a
worker's part and nothing else, nodes cannot end each other's connections or hold a lock past a transaction,
the scheduler deletes nothing but `unavailable`, and sessions that turned their own timeouts off are ended by
the owner's function.

Node roles are cluster-wide: each test makes its own, with a unique name, and drops it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from db.nodes import create_node_role, node_role
from db.queue.live import register_worker
from db.session import session_factory
from db.stale_sessions import end_stale_sessions
from tests.conftest import POSTGRES_ADMIN_URL
from tests.results_data import SeedModel, seed_sweep

ROOT = Path(__file__).resolve().parents[2]


def as_role(url: str, role: str):
    return create_engine(make_url(url).set(username=role, password=None), poolclass=NullPool)


def refused(engine, *statements: str) -> str:
    """Run `statements` in one transaction as the engine's role; the error they end in (they must end in one)."""
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        for statement in statements:
            connection.execute(text(statement))
    return str(caught.value.orig)


@pytest.fixture
def seeded(postgres_url):
    with session_factory(postgres_url).begin() as session:
        seed_sweep(session, name="seeded", models=[SeedModel("fill-mask", "hub:org/m", [0.01, 0.02])])
    return postgres_url


@pytest.fixture
def make_node(postgres_url):
    """make_node() -> a new node role's engine (trust authentication: the password is not asked here)."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    made, engines = [], []

    def make(name: str | None = None):
        role = node_role(name or f"t{uuid.uuid4().hex[:10]}")
        with admin.connect() as connection:
            create_node_role(connection, role)
        made.append(role.role)
        engines.append(as_role(postgres_url, role.role))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()
    database = make_url(postgres_url).database
    with admin.connect() as connection:
        for role in made:
            connection.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
            connection.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


# Finding 1: the reader could write large objects inside its read-only transactions.
@pytest.mark.parametrize("call", ["lo_from_bytea(0, '\\x00'::bytea)", "lo_create(0)", "lo_creat(-1)",
                                  "lo_import('/etc/hostname')"])
def test_reader_stores_no_large_objects(seeded, call):
    reader = as_role(seeded, "wattsweep_reader")
    assert "permission denied for function" in refused(reader, f"SELECT {call}")
    reader.dispose()


# Finding 3: every node could rewrite or erase every result.
@pytest.mark.parametrize("statement", [
    "UPDATE measurements SET energy_kwh = energy_kwh / 2",
    "UPDATE measurements SET gpu_energy_kwh = 0",
    "DELETE FROM measurements",
    "DELETE FROM sweeps",
    "DELETE FROM runs",
    "TRUNCATE measurements",
    "UPDATE runs SET dataset = 'builtin:other'",
    "UPDATE jobs SET model = 'hub:evil/m'",
    "INSERT INTO sweeps (name, spec, hardware_class, mode, cancelled, exclusive, created_at) "
    "VALUES ('x', '{}', 'cpu', 'distributed', false, false, now())",
    "UPDATE workers SET db_role = current_user",
    "SELECT pg_advisory_lock(hashtext('wattsweep-host:node7'))",
    "SELECT pg_try_advisory_lock(1)",
    # the summaries (0032) are the owner's triggers' to write: a node cannot forge a figure
    "UPDATE job_figures SET sum_x = 0",
    "INSERT INTO job_figures (job_id) VALUES (1)",
    "DELETE FROM cell_figures",
    "UPDATE job_setups SET runs = 0",
    "SELECT wattsweep_refresh_figures(ARRAY[1::bigint])",
    "INSERT INTO figures_pending (job_id) VALUES (1)",
])
def test_a_node_rewrites_and_erases_no_results(seeded, make_node, statement):
    assert "permission denied" in refused(make_node(), statement)


def test_a_node_does_what_a_worker_does(seeded, make_node):
    node = make_node()
    with node.begin() as connection:
        figures = "SELECT sum(energy) FROM job_figures"
        before = connection.execute(text(figures)).scalar()
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('wattsweep-host:node7'))"))
        connection.execute(text("UPDATE measurements SET cpu_energy_attributed_kwh = 0.001, is_outlier = false, "
                                "kwh_per_1k_queries = 0.5, max_concurrent_windows = 2"))
        connection.execute(text("SET CONSTRAINTS wattsweep_figures_at_commit IMMEDIATE"))  # else at commit
        assert connection.execute(text(figures)).scalar() != before  # kept in step by the owner's triggers
        connection.execute(text("UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now()"))
        connection.execute(text("UPDATE runs SET status = 'done', worker_id = 'gpu0@n', finished_at = now()"))
        job_id = connection.execute(text("SELECT min(id) FROM jobs")).scalar()
        connection.execute(text("INSERT INTO unavailable (job_id, worker_id, token, error, created_at) "
                                "VALUES (:j, 'gpu0@n', 't', 'no model', now())"), {"j": job_id})
        assert connection.execute(text("DELETE FROM unavailable")).rowcount == 1



def test_a_node_splits_a_long_unit_it_claims(seeded, make_node):
    """Near a sweep's end a worker keeps a long unit's first batches and leaves the rest as a new pending shard
    (db/queue/splitting.py): the node role may insert that shard and shrink its own, through the real code."""
    from db.queue.splitting import split_claimed

    admin = create_engine(seeded, poolclass=NullPool)
    with admin.begin() as connection:  # the scheduler's plan: one unit, the whole run, leased by this worker
        run_id, job_id = connection.execute(text("SELECT id, job_id FROM runs ORDER BY id LIMIT 1")).one()
        connection.execute(text("UPDATE runs SET n_shards = 1 WHERE id = :r"), {"r": run_id})
        shard_id = connection.execute(text(
            "INSERT INTO shards (job_id, run_id, shard_index, query_start, n_queries, expected_s, status, attempts) "
            "VALUES (:j, :r, 0, 0, 10000, 10000.0, 'running', 1) RETURNING id"), {"j": job_id, "r": run_id}).scalar()
    admin.dispose()
    node = make_node()
    with node.begin() as connection:
        start = 0
        split = split_claimed(connection, shard_id=shard_id, run_id=run_id, job_id=job_id, hardware_class="a100",
                              query_start=start, n_queries=10_000, expected_s=10_000.0, batch_size=1, warmup=0,
                              lease_timeout_s=120)
        assert split is not None and split.n_queries < 10_000
        assert connection.execute(text("SELECT count(*) FROM shards WHERE run_id = :r"), {"r": run_id}).scalar() == 2

def test_a_node_updates_only_its_own_worker_rows(seeded, make_node):
    mine, theirs = make_node(), make_node()
    with sessionmaker(theirs).begin() as session:
        assert register_worker(session, worker_id="gpu0@b", token="tok-b", hostname="b", device="cuda:0",
                               hardware_class="a100", inventory={}, twin_window_s=None)
    with mine.begin() as connection:
        stolen = connection.execute(text("UPDATE workers SET token = 'stolen', heartbeat_at = now() "
                                         "WHERE id = 'gpu0@b'"))
        assert stolen.rowcount == 0  # row-level security: not even seen as updatable
    with sessionmaker(mine)() as session, pytest.raises(DBAPIError, match="row-level security"):
        register_worker(session, worker_id="gpu0@b", token="tok-a", hostname="a", device="cuda:0",
                        hardware_class="a100", inventory={}, twin_window_s=None)  # a takeover of b's id
    with theirs.connect() as connection:
        assert connection.execute(text("SELECT token FROM workers WHERE id = 'gpu0@b'")).scalar() == "tok-b"


# Finding 4: a node could end another node's connections (shared role) and hold session locks for ever.
@pytest.mark.parametrize("function", ["pg_terminate_backend", "pg_cancel_backend"])
def test_nodes_cannot_end_each_others_connections(seeded, make_node, function):
    victim, attacker = make_node(), make_node()
    with victim.connect() as held:
        pid = held.execute(text("SELECT pg_backend_pid()")).scalar()
        assert "permission denied for function" in refused(attacker, f"SELECT {function}({pid})")
        app = as_role(seeded, "wattsweep_app")  # one shared role is no way round it either
        assert "permission denied for function" in refused(app, f"SELECT {function}({pid})")
        app.dispose()
        assert held.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("statement", [
    "DELETE FROM sweeps", "DELETE FROM measurements", "DELETE FROM runs", "DELETE FROM workers",
    "TRUNCATE jobs CASCADE", "UPDATE measurements SET energy_kwh = 0", "SELECT pg_advisory_lock(1)",
])
def test_the_scheduler_deletes_nothing_but_unavailable(seeded, statement):
    app = as_role(seeded, "wattsweep_app")
    assert "permission denied" in refused(app, statement)
    with app.begin() as connection:
        connection.execute(text("DELETE FROM unavailable"))
        connection.execute(text("UPDATE sweeps SET cancelled = true"))
    app.dispose()


def test_tables_made_later_are_read_only_until_a_migration_grants_writes(postgres_url, make_node):
    owner = create_engine(postgres_url, poolclass=NullPool)
    with owner.begin() as connection:
        connection.execute(text("CREATE TABLE later_units (id serial PRIMARY KEY, n int)"))
    owner.dispose()
    for engine in (as_role(postgres_url, "wattsweep_app"), make_node()):
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM later_units"))
        assert "permission denied" in refused(engine, "INSERT INTO later_units (n) VALUES (1)")


# Finding 2: a reader (or a node) that turns its own timeouts off and leaves a transaction open.
def test_sessions_that_turned_their_timeouts_off_are_ended_by_the_owners_function(seeded, make_node):
    reader, node = as_role(seeded, "wattsweep_reader"), make_node()
    app = sessionmaker(as_role(seeded, "wattsweep_app"))
    with reader.connect() as stale_reader, node.connect() as stale_node:
        for stale in (stale_reader, stale_node):
            stale.execute(text("SET idle_in_transaction_session_timeout = 0"))
            stale.execute(text("SET statement_timeout = 0"))
            stale.execute(text("SELECT count(*) FROM jobs"))  # and stays in the transaction, holding its lock
        pids = {c.execute(text("SELECT pg_backend_pid()")).scalar() for c in (stale_reader, stale_node)}
        with app.begin() as session:
            assert not pids & {s.pid for s in end_stale_sessions(session, idle_s=60, statement_s=0)}
        time.sleep(1.5)
        with app.begin() as session:
            ended = end_stale_sessions(session, idle_s=1, statement_s=0)
            assert session.execute(text("SELECT 1")).scalar() == 1  # the caller's own session is left alone
        assert pids <= {s.pid for s in ended}
        for stale in (stale_reader, stale_node):
            with pytest.raises(DBAPIError):
                stale.execute(text("SELECT 1"))
    reader.dispose()


def test_only_the_scheduler_may_end_stale_sessions(seeded, make_node):
    for engine in (as_role(seeded, "wattsweep_reader"), make_node()):
        assert "permission denied for function" in refused(engine, "SELECT * FROM wattsweep_end_stale_sessions(1, 0)")


def wattsweep(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WATTSWEEP_DATABASE_URL"} | {"WATTSWEEP_DATABASE_URL":
                                                                                       database_url}
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_add_node_creates_a_member_of_the_worker_role_and_prints_what_the_node_needs(postgres_url):
    name = f"gpu-node-{uuid.uuid4().hex[:6]}"
    role = "wattsweep_node_" + name.replace("-", "_")
    result = wattsweep("db", "add-node", name, "--connections", "8", database_url=postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        assert result.returncode == 0, result.stderr
        lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        url = make_url(lines["WATTSWEEP_DATABASE_URL"])
        assert (url.username, url.database, lines["NODE_NAME"]) == (role, make_url(postgres_url).database,
                                                                    name.replace("-", "_"))
        assert len(url.password) >= 32
        with admin.connect() as connection:
            member = connection.execute(text(f"SELECT pg_has_role('{role}', 'wattsweep_worker', 'MEMBER')")).scalar()
            limit = connection.execute(text(f"SELECT rolconnlimit FROM pg_roles WHERE rolname = '{role}'")).scalar()
        assert member and limit == 8
        node = create_engine(url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
        with node.connect() as connection:
            assert connection.execute(text("SELECT session_user")).scalar() == role
            assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "1min"
        node.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'REVOKE CONNECT ON DATABASE "{make_url(postgres_url).database}" FROM "{role}"'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_add_node_prints_sql_for_psql_and_refuses_bad_names():
    result = wattsweep("db", "add-node", "node7", "--sql", database_url="postgresql://postgres@127.0.0.1/wattsweep")
    assert result.returncode == 0, result.stderr
    assert 'GRANT wattsweep_worker TO "wattsweep_node_node7";' in result.stdout
    assert "WATTSWEEP_DATABASE_URL=postgresql://wattsweep_node_node7:" in result.stderr
    for bad in ("node 7", "x; DROP ROLE postgres", "", "n" * 41, "Ünïcode"):
        result = wattsweep("db", "add-node", bad, "--sql", database_url="postgresql://postgres@127.0.0.1/wattsweep")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, (bad, result.stderr)
        assert "node name" in result.stderr
    result = wattsweep("db", "add-node", "node7", database_url="sqlite:///x.db")
    assert result.returncode == 2 and "Postgres only" in result.stderr


def test_the_admin_url_of_these_tests_is_a_superuser():  # what make_node relies on
    admin = create_engine(POSTGRES_ADMIN_URL, poolclass=NullPool)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT current_setting('is_superuser')")).scalar() == "on"
    admin.dispose()


def test_every_table_says_who_writes_it(postgres_url):
    """A table a later migration adds is SELECT-only for the scheduler and the workers until a migration grants its
    writes (as 0022 does in APP_RIGHTS and WORKER_RIGHTS, and 0025 for reference_results): this fails until
    someone has decided who writes it. Read from the migrated database's own grants, whichever migration gave them.
    A table that only the owner's triggers write (0032's summaries) says so in its comment."""
    admin = create_engine(postgres_url, poolclass=NullPool)
    with admin.connect() as connection:
        unwritten = set(connection.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version' "
            "AND NOT has_table_privilege('wattsweep_app', c.oid, 'INSERT') "
            "AND NOT has_table_privilege('wattsweep_worker', c.oid, 'INSERT') "
            "AND COALESCE(obj_description(c.oid, 'pg_class'), '') NOT LIKE 'written by: triggers %'")).scalars())
    admin.dispose()
    assert unwritten == set()


def test_the_schedulers_reconcile_watch_ends_a_readers_stale_transaction(seeded):
    """Finding 2 end to end: `wattsweep reconcile --watch`, run as the scheduler's role, ends a reader session that
    turned its timeouts off and sits in a transaction holding its lock on `jobs`."""
    from tests.distributed.conftest import REDIS_URL, free_redis_db

    reader = as_role(seeded, "wattsweep_reader")
    with free_redis_db() as number, reader.connect() as stale:
        stale.execute(text("SET idle_in_transaction_session_timeout = 0"))
        stale.execute(text("SELECT count(*) FROM jobs"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")} | {
            "WATTSWEEP_DATABASE_URL": make_url(seeded).set(username="wattsweep_app").render_as_string(False),
            "WATTSWEEP_BROKER_URL": f"{REDIS_URL}/{number}", "WATTSWEEP_SESSION_IDLE_LIMIT_S": "1"}
        watch = subprocess.Popen([sys.executable, "-m", "scheduler", "reconcile", "--watch", "--interval", "0.5"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            ended = False
            while time.monotonic() < deadline and not ended:
                time.sleep(4)  # idle past the limit between looks (a look makes the session active again)
                try:
                    stale.execute(text("SELECT 1"))
                except DBAPIError:
                    ended = True
            assert ended, "the reader's idle transaction outlived the scheduler's passes"
        finally:
            watch.terminate()
            output = watch.communicate(timeout=30)[0]
        assert "ended session" in output and "wattsweep_reader" in output, output
    reader.dispose()
