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
    device = services["worker-gpu1"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert (device["driver"], device["device_ids"], device["capabilities"]) == ("nvidia", ["1"], ["gpu"])
    assert services["scheduler"]["command"] == ["reconcile", "--watch"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


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


def secrets_of(service: dict) -> dict[str, str]:
    """target (the file name under /run/secrets) -> the compose secret mounted there."""
    found = {}
    for secret in service.get("secrets", []):
        source = secret if isinstance(secret, str) else secret["source"]
        found[source if isinstance(secret, str) else secret.get("target", source)] = source
    return found


def test_each_service_gets_its_own_credentials_as_files(tmp_path):
    services = services_of(filled_env(tmp_path))
    assert secrets_of(services["migrate"]) == {"wattsweep_database_url": "owner_database_url"}
    assert secrets_of(services["scheduler"]) == {"wattsweep_database_url": "scheduler_database_url",
                                                 "wattsweep_broker_url": "scheduler_broker_url"}
    for worker in ("worker-gpu0", "worker-gpu1"):  # the node's own Postgres role and its class's Redis user
        assert secrets_of(services[worker]) == {"wattsweep_database_url": "node_database_url",
                                                "wattsweep_broker_url": "node_broker_url"}
    for name in ("migrate", "scheduler", "worker-gpu0"):
        assert services[name]["environment"]["WATTSWEEP_SECRETS_DIR"] == "/run/secrets"
    assert set(secrets_of(services["postgres"])) == {"postgres_superuser_password", "postgres_owner_password",
                                                     "postgres_app_password", "postgres_reader_password"}
    assert set(secrets_of(services["redis"])) == {"redis_password", "redis_flower_password", "redis_workers"}
    assert set(secrets_of(services["flower"])) == {"flower_broker_url", "flower_basic_auth"}


def test_no_password_is_in_any_environment(tmp_path):
    """Finding 9: every role's password sat in the Postgres container's environment (docker inspect shows it)."""
    services = services_of(filled_env(tmp_path))
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            assert not ("PASSWORD" in key and not key.endswith("_FILE")), (name, key)
            assert not (key.endswith(("_URL", "_AUTH")) or "://" in str(value)), (name, key, value)
    assert "PASSWORD" not in (ROOT / ".env.example").read_text()  # .env holds settings; secrets/ holds secrets


def test_the_superuser_is_used_by_no_service(tmp_path):
    services = services_of(filled_env(tmp_path))
    assert services["postgres"]["environment"]["POSTGRES_USER"] == "postgres"  # the image's, used by no service
    assert "--requirepass" not in services["redis"]["command"]  # one password for everything: gone
    for mounted in ("deploy/postgres-init.sh", "migrations/roles.sql", "deploy/redis-start.sh",
                    "deploy/redis-users.acl"):
        assert (ROOT / mounted).is_file()
        assert any(str(ROOT / mounted) in str(volume) for service in services.values()
                   for volume in service.get("volumes", [])), mounted


def test_every_service_is_hardened(tmp_path):
    """Finding 9: health checks, capabilities, privileges, read-only roots and memory limits."""
    services = services_of(filled_env(tmp_path))
    for name, service in services.items():
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["read_only"] is True, name
        assert service["mem_limit"], name
        assert "/tmp" in service["tmpfs"], name
        check = service["healthcheck"]["test"]
        if name == "migrate":  # a one-shot: its exit status is what the others wait for
            assert check == ["NONE"]
        else:
            assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    # The image's entrypoint hands the data folder to the postgres user; nothing else adds a capability.
    assert set(services["postgres"]["cap_add"]) <= {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
    assert [name for name, service in services.items() if service.get("cap_add")] == ["postgres"]
    assert services["worker-gpu0"]["healthcheck"]["test"] == ["CMD", "wattsweep", "db", "check"]


def test_redis_has_a_memory_cap_and_never_evicts(tmp_path):
    """Finding 6: no memory cap. The cap is sized in .env; noeviction refuses writes instead of dropping messages."""
    command = services_of(filled_env(tmp_path))["redis"]["command"]
    assert command[command.index("--maxmemory") + 1] == "512mb"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    command = services_of(filled_env(tmp_path, REDIS_MAXMEMORY="2gb"))["redis"]["command"]
    assert command[command.index("--maxmemory") + 1] == "2gb"


def test_ports_are_bound_to_bind_address_and_flower_to_its_own(tmp_path):
    """Finding 8: opening the database to the cluster network published Flower's login page with it."""
    def published(services: dict) -> dict[str, set[str]]:
        return {name: {str(port) for port in services[name]["ports"]} for name in ("postgres", "redis", "flower")}

    assert published(services_of(filled_env(tmp_path))) == {
        "postgres": {"127.0.0.1:5432:5432/tcp"}, "redis": {"127.0.0.1:6379:6379/tcp"},
        "flower": {"127.0.0.1:5555:5555/tcp"}}
    lines = [line for line in filled_env(tmp_path).read_text().splitlines() if "BIND_ADDRESS" not in line]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    assert all(port.startswith("127.0.0.1:") for ports in published(services_of(tmp_path / ".env")).values()
               for port in ports)  # unset
    opened = published(services_of(filled_env(tmp_path, BIND_ADDRESS="10.20.0.1")))
    assert opened == {"postgres": {"10.20.0.1:5432:5432/tcp"}, "redis": {"10.20.0.1:6379:6379/tcp"},
                      "flower": {"127.0.0.1:5555:5555/tcp"}}


def test_make_secrets_writes_every_file_compose_names_but_the_nodes_database_url(tmp_path):
    result = subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), "a100", "alice"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    named = {Path(secret["file"]).name for secret in config["secrets"].values()}
    written = {path.name for path in (tmp_path / "secrets").iterdir()}
    assert written == named - {"node_database_url"}  # that one comes from `wattsweep db add-node`
    assert oct((tmp_path / "secrets").stat().st_mode & 0o777) == "0o700"
    read = {name: (tmp_path / "secrets" / name).read_text().strip() for name in written}
    from db.settings import make_settings

    for name in ("owner_database_url", "scheduler_database_url"):
        assert make_settings(database_url=read[name]).database_url.startswith("postgresql+psycopg://")
    for name in ("scheduler_broker_url", "node_broker_url", "flower_broker_url"):
        make_settings(broker_url=read[name])
    assert read["node_broker_url"].startswith("redis://worker-a100:" + read["redis_workers"].split(":")[1] + "@")
    assert read["scheduler_database_url"].startswith(f"postgresql://wattsweep_app:{read['postgres_app_password']}@")
    assert read["flower_basic_auth"].startswith("alice:")
    before = dict(read)
    assert subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), "a100", "alice"], cwd=tmp_path,
                          capture_output=True, timeout=30).returncode == 0
    assert {name: (tmp_path / "secrets" / name).read_text().strip() for name in written} == before  # kept
    for arguments in (["a100"], ["a*", "alice"], ["a100", "al:ice"]):  # no default Flower user; no odd names
        result = subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), *arguments], cwd=tmp_path / "secrets",
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, arguments
