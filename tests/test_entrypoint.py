"""Issue 18, defect 11: the image's entrypoint gives the host's RAPL counters to the worker user where it may, and
runs the command as that user; where it may not, it says in one line that CPU energy will be an estimate."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[1] / "deploy" / "worker-entrypoint.sh"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"),
                                reason="needs root, setpriv and unshare (as the image's entrypoint runs)")


@pytest.fixture
def powercap():
    root = Path(tempfile.mkdtemp(prefix="powercap-", dir="/tmp"))  # pytest's tmp_path is closed to other users
    root.chmod(0o755)
    for domain in ("intel-rapl:0", "intel-rapl:0/intel-rapl:0:0"):
        (root / domain).mkdir(parents=True)
        (root / domain).chmod(0o755)
        counter = root / domain / "energy_uj"
        counter.write_text("123456\n")
        counter.chmod(0o400)  # what Linux 5.10+ does
    yield root
    shutil.rmtree(root)


def run(powercap: Path, *wrap: str) -> subprocess.CompletedProcess:
    command = ["sh", "-c", f"id -un; cat {powercap}/intel-rapl:0/energy_uj"]
    env = {**os.environ, "WATTSWEEP_POWERCAP_DIR": str(powercap), "WATTSWEEP_RUN_AS": "nobody"}
    return subprocess.run([*wrap, str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, timeout=60)


def test_rapl_becomes_readable_by_the_worker_user_and_the_command_runs_as_it(powercap):
    result = run(powercap)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nobody", "123456"]
    assert result.stderr == ""


def test_where_the_host_forbids_it_the_worker_still_starts_and_says_cpu_energy_is_an_estimate(powercap):
    script = f"mount --bind -o ro {powercap} {powercap} && mount -o remount,bind,ro {powercap} && exec \"$@\""
    result = run(powercap, "unshare", "-m", "sh", "-c", script, "sh")
    assert "Permission denied" in result.stderr  # the command ran, as nobody, and could not read the counter
    lines = [line for line in result.stderr.splitlines() if line.startswith("wattsweep:")]
    assert len(lines) == 1 and "estimate" in lines[0] and "0 of 2 counters" in lines[0]
