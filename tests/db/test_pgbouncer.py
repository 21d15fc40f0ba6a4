"""PgBouncer in transaction mode in front of Postgres (README, "Large clusters"), tested for real: a private
cluster, a pgbouncer process with ONE server connection shared by every client, and wattsweep's own paths
through it (advisory transaction locks, statements repeated past psycopg's prepare threshold, a whole sweep)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from db.models import Measurement
from db.session import make_engine
from db.settings import make_settings
from tests.scratch_db import scratch_database
from tests.services import PrivatePostgres, _wait_for_port, free_port

pytestmark = pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="needs pgbouncer (Debian's package)")


class PgBouncer:
    """pgbouncer in transaction mode with one server connection per (database, user): the strictest pooling."""

    def __init__(self, pg: PrivatePostgres) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="wattsweep-pgbouncer-"))
        self.port = free_port()
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={pg.host} port={pg.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 100\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n")
        user = "postgres" if os.geteuid() == 0 else None  # pgbouncer refuses to run as root
        if user:
            shutil.chown(self.folder, user)
            for path in self.folder.iterdir():
                shutil.chown(path, user)
        self.process = subprocess.Popen(["pgbouncer", str(self.folder / "pgbouncer.ini")], user=user,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_port("127.0.0.1", self.port, self.process, self.folder / "pgbouncer.log", 30)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bouncer_url():
    with PrivatePostgres() as pg, scratch_database(pg.admin_url, "wattsweep_bouncer") as direct_url:
        bouncer = PgBouncer(pg)
        try:
            yield bouncer.url(direct_url.rsplit("/", 1)[1])
        finally:
            bouncer.close()


def test_startup_options_are_refused_so_pgbouncer_mode_sends_none(bouncer_url):
    direct_style = make_engine(bouncer_url, make_settings())
    with pytest.raises(OperationalError, match="unsupported startup parameter"):
        direct_style.connect()
    direct_style.dispose()


def test_locks_and_repeated_statements_share_one_server_connection(bouncer_url):
    engine = make_engine(bouncer_url, make_settings(pgbouncer=True))
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(30):  # past psycopg's prepare threshold (5) on each client connection
                with engine.begin() as connection:
                    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('wattsweep-host:node1'))"))
                    assert connection.execute(text("SELECT :n + :i"), {"n": n, "i": i}).scalar() == n + i
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    engine.dispose()
    assert not errors, errors


def test_a_sweep_runs_through_pgbouncer(bouncer_url, tmp_path):
    from tests.helpers import CARBON, GOOD_TASK, HEAD, TASKS

    (tmp_path / "sweep.yaml").write_text(HEAD.replace("repetitions: 1", "repetitions: 3") + CARBON + TASKS + GOOD_TASK)
    env = os.environ | {"WATTSWEEP_DATABASE_URL": bouncer_url, "WATTSWEEP_PGBOUNCER": "1", "HF_HUB_OFFLINE": "1",
                        "WATTSWEEP_BASELINE_WINDOW_S": "0"}
    result = subprocess.run([sys.executable, "-m", "scheduler", "run", "sweep.yaml"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    engine = make_engine(bouncer_url, make_settings(pgbouncer=True))
    with engine.connect() as connection:
        stored = select(func.count()).select_from(Measurement).where(Measurement.phase == "query")
        assert connection.execute(stored).scalar() == 3  # stored under the host lock, through pgbouncer
    engine.dispose()
