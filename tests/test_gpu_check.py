"""bench/gpu_check.py --cpu runs in CI: every CPU-applicable check passes, the GPU-only parts say SKIP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_CHECKS = 2 + 3 + 14  # ttft (stamp, budget), freeze (two rounds, budget), cells (13 tasks, budget)
GPU_ONLY_PARTS = 5  # device, counter, power, memory, group


def test_the_gpu_check_in_cpu_mode_passes_every_cpu_applicable_check(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--cpu"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert re.fullmatch(rf"gpu_check: {CPU_CHECKS} PASS, 0 FAIL, {GPU_ONLY_PARTS} SKIP in \d+ s", summary), (
        "\n".join(line for line in lines if line.startswith(("FAIL", "gpu_check"))) or result.stderr[-3000:])
    assert result.returncode == 0
    assert all(f"SKIP {part}: needs a GPU" in result.stdout
               for part in ("device", "counter", "power", "memory", "group"))
    assert re.search(r"== cells \(budget \d+ s\)", result.stdout)  # each part prints its budget
