"""Commands that end freeze their objects instead of letting the collector walk them at exit
(scheduler.cli.options.collector_paused); their database connections must still be closed, as the collector's last
pass closed them: on SQLite, a closed connection folds its WAL file back into the database and removes it."""

from __future__ import annotations

from tests.helpers import wattsweep


def test_status_and_report_close_their_sqlite_connections(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    assert wattsweep("db", "upgrade", "--database-url", url, cwd=tmp_path).returncode == 0
    for command in (["status"], ["report", "--format", "csv"], ["export"]):
        result = wattsweep(*command, "--database-url", url, cwd=tmp_path)
        assert "no sweeps yet" in result.stderr, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"], command
