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
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD")}
    return subprocess.run(["docker-compose", "--project-directory", str(ROOT), "--env-file", str(env_file),
                           "-f", str(ROOT / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_compose_file_is_valid_with_the_example_env(tmp_path):
    lines = [line if not line.endswith("=") else line + "filled-in" for line in
             (ROOT / ".env.example").read_text().splitlines()]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    result = compose_config(tmp_path / ".env")
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
