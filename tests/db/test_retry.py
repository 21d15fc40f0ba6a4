"""A worker holding a finished run while Postgres is unreachable retries with backoff and does not lose it.

"Unreachable" is real: the worker's connection goes through a TCP proxy that we stop and start again.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from db.models import Measurement, Sweep
from db.queue.jobs import claim_job, pending_runs
from db.results.store import record_run
from db.retry import run_in_transaction
from db.session import session_factory
from tests.helpers import first_job_id, make_sweep, reading
from worker.workloads.base import WorkDone


class TcpProxy:
    """Forwards a local port to Postgres; `down()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        for sock in [self._listener, *self._sockets]:  # shutdown also wakes the thread blocked in accept()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


@pytest.fixture
def proxy():
    proxy = TcpProxy()
    proxy.up()
    yield proxy
    try:
        proxy.down()
    except OSError:
        pass


def test_a_finished_run_survives_a_database_outage(postgres_url, proxy):
    direct = session_factory(postgres_url)
    job_id = first_job_id(direct, make_sweep(direct))
    with direct.begin() as session:
        claim_job(session, job_id=job_id, worker_id="w1", lease_timeout_s=60)
        run_id = pending_runs(session, job_id=job_id)[0].id
    via_proxy = session_factory(postgres_url.replace(":5432/", f":{proxy.port}/"))
    with via_proxy() as session:  # a pooled connection that the outage will break
        assert session.scalar(select(func.count()).select_from(Sweep)) == 1

    proxy.down()
    outcome: dict = {}

    def store() -> None:
        work = lambda s: record_run(s, run_id=run_id, worker_id="w1", reading=reading(), units=WorkDone(queries=4))  # noqa: E731
        try:
            outcome["stored"] = run_in_transaction(via_proxy, work, retry_for_s=60, first_wait_s=0.2, max_wait_s=0.5)
        except Exception as error:  # shown by the assertion below
            outcome["error"] = repr(error)

    worker = threading.Thread(target=store)
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive() and not outcome, outcome  # still holding the reading, retrying
    proxy.up()
    worker.join(30)
    assert outcome["stored"] is True
    with direct() as session:
        assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.run_id == run_id)) == 1


def test_gives_up_after_the_deadline_and_never_retries_a_bad_statement(sqlite_url):
    unreachable = session_factory("postgresql+psycopg://nobody@127.0.0.1:1/none")
    waits: list[float] = []
    with pytest.raises(OperationalError):
        run_in_transaction(unreachable, lambda s: s.execute(select(1)), retry_for_s=3, first_wait_s=0.5,
                           sleep=waits.append)
    assert waits and waits[:3] == [0.5, 1.0, 2.0][: len(waits[:3])]

    sessions = session_factory(sqlite_url)
    calls = []

    def duplicate(session) -> None:
        calls.append(1)
        session.add(Sweep(id=1, name="a", spec={}, hardware_class="cpu", mode="local", cancelled=False))
        session.flush()
        session.add(Sweep(id=1, name="b", spec={}, hardware_class="cpu", mode="local", cancelled=False))
        session.flush()

    with pytest.raises(IntegrityError):
        run_in_transaction(sessions, duplicate, retry_for_s=30)
    assert calls == [1]
