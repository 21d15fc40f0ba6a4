"""docker-compose.yml is valid with the variables .env.example lists, and refuses to run without its secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="docker-compose not installed (.ci/run installs it)")


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    example = [line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line]
    env = {k: v for k, v in os.environ.items() if k not in example}
    return subprocess.run(["docker-compose", "--project-directory", str(ROOT), "--env-file", str(env_file),
                           "-f", str(ROOT / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, env=env, timeout=60)


def filled_env(tmp_path: Path, **changes: str) -> Path:
    lines = [line if not line.endswith("=") else line + "filled-in" for line in
             (ROOT / ".env.example").read_text().splitlines()]
    lines = [f"{line.split('=')[0]}={changes[line.split('=')[0]]}" if line.split("=")[0] in changes else line
             for line in lines]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    return tmp_path / ".env"


def test_compose_file_is_valid_with_the_example_env(tmp_path):
    result = compose_config(filled_env(tmp_path))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"postgres", "redis", "migrate", "scheduler", "flower", "worker-gpu0"} <= set(services)
    assert "--appendonly" in services["redis"]["command"] and "noeviction" in services["redis"]["command"]
    device = services["worker-gpu1"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert (device["driver"], device["device_ids"], device["capabilities"]) == ("nvidia", ["1"], ["gpu"])
    assert services["scheduler"]["command"] == ["reconcile", "--watch"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "filled-in" in services["worker-gpu0"]["environment"]["WATTSWEEP_DATABASE_URL"]


def test_compose_refuses_to_run_without_secrets(tmp_path):
    (tmp_path / ".env").write_text("HARDWARE_CLASS=a100\n")
    result = compose_config(tmp_path / ".env")
    assert result.returncode != 0 and "PASSWORD in .env" in result.stderr


def test_compose_requires_a_node_name(tmp_path):
    """Twin NODE_NAMEs copied to every node would give twin worker ids: there is no default."""
    lines = [line if not line.endswith("=") else line + "filled-in" for line in
             (ROOT / ".env.example").read_text().splitlines() if not line.startswith("NODE_NAME")]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    result = compose_config(tmp_path / ".env")
    assert result.returncode != 0 and "NODE_NAME in .env" in result.stderr


def services_of(env_file: Path) -> dict:
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_no_service_connects_as_a_superuser(tmp_path):
    services = services_of(filled_env(tmp_path))
    users = {}
    for name, service in services.items():
        environment = service.get("environment", {})
        for key in ("WATTSWEEP_DATABASE_URL", "WATTSWEEP_BROKER_URL", "CELERY_BROKER_URL"):
            if key in environment:
                users[(name, key)] = environment[key].split("//")[1].split(":")[0]
    assert users[("migrate", "WATTSWEEP_DATABASE_URL")] == "wattsweep_owner"
    assert {users[(n, "WATTSWEEP_DATABASE_URL")] for n in ("scheduler", "worker-gpu0", "worker-gpu1")} == \
        {"wattsweep_app"}
    assert {users[(n, "WATTSWEEP_BROKER_URL")] for n in ("scheduler", "worker-gpu0")} == {"wattsweep"}
    assert users[("flower", "CELERY_BROKER_URL")] == "flower"
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "postgres"  # the image's, used by no service
    assert "--requirepass" not in services["redis"]["command"]  # one password for everything: gone
    for mounted in ("deploy/postgres-init.sh", "migrations/roles.sql", "deploy/redis-start.sh",
                    "deploy/redis-users.acl"):
        assert (ROOT / mounted).is_file()
        assert any(str(ROOT / mounted) in str(volume) for service in services.values()
                   for volume in service.get("volumes", [])), mounted


def test_ports_are_bound_to_bind_address_default_loopback(tmp_path):
    def published(services: dict) -> set[str]:
        return {str(port) for name in ("postgres", "redis", "flower") for port in services[name]["ports"]}

    assert published(services_of(filled_env(tmp_path))) == {
        "127.0.0.1:5432:5432/tcp", "127.0.0.1:6379:6379/tcp", "127.0.0.1:5555:5555/tcp"}
    lines = [line for line in filled_env(tmp_path).read_text().splitlines() if not line.startswith("BIND_ADDRESS")]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    assert all(port.startswith("127.0.0.1:") for port in published(services_of(tmp_path / ".env")))  # unset
    opened = published(services_of(filled_env(tmp_path, BIND_ADDRESS="10.20.0.1")))
    assert opened == {"10.20.0.1:5432:5432/tcp", "10.20.0.1:6379:6379/tcp", "10.20.0.1:5555:5555/tcp"}


def test_flower_has_no_default_user_name(tmp_path):
    result = compose_config(filled_env(tmp_path, FLOWER_USER=""))
    assert result.returncode != 0 and "set FLOWER_USER in .env" in result.stderr
