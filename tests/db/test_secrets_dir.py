"""Compose hands services their URLs as files (/run/secrets/wattsweep_database_url, ...), named by
WATTSWEEP_SECRETS_DIR, so that no password is in a process's environment; `wattsweep db check` is the services'
health check."""

from __future__ import annotations

from tests.helpers import wattsweep


def test_urls_come_from_the_secrets_folder_and_db_check_says_whether_the_schema_is_there(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "wattsweep_database_url").write_text(f"sqlite:///{tmp_path / 'from-secret.db'}\n")
    env = {"WATTSWEEP_SECRETS_DIR": str(secrets)}
    result = wattsweep("db", "check", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "run `wattsweep db upgrade`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert wattsweep("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert (tmp_path / "from-secret.db").exists() and not (tmp_path / "wattsweep.db").exists()
    result = wattsweep("db", "check", cwd=tmp_path, env=env)
    assert result.returncode == 0 and "schema up to date" in result.stdout


def test_a_bad_url_in_a_secret_file_is_one_line_without_its_password(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "wattsweep_database_url").write_text("mysql://app:hunter2@db/wattsweep\n")
    result = wattsweep("db", "check", cwd=tmp_path, env={"WATTSWEEP_SECRETS_DIR": str(secrets)})
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "WATTSWEEP_DATABASE_URL='mysql://app:***@db/wattsweep': use a sqlite" in result.stderr
    assert "hunter2" not in result.stderr
