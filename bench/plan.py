"""`wattsweep plan` on the whole study (issue 6) and on AI Energy Score (issue 13). Prints figures; asserts nothing.

Wall time of `wattsweep plan PRESET` in a fresh process (no database yet) for
presets/power-hungry-processing.yaml (118 jobs, 3,460 runs) and
presets/ai-energy-score.yaml (100 jobs, 1,000 runs), median of 5 (target:
< 2 s), and the heavy modules it must not import; and `plan --workers 64` on the
study (issue 10: the same, with the expected makespan of 64 workers).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = (ROOT / "presets" / "power-hungry-processing.yaml", ROOT / "presets" / "ai-energy-score.yaml")
HEAVY = ("torch", "transformers", "diffusers", "codecarbon", "datasets", "huggingface_hub")


def main(preset: Path, rounds: int = 5, extra: tuple[str, ...] = ()) -> None:
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            start = time.perf_counter()
            before = os.times()
            result = subprocess.run([sys.executable, "-m", "scheduler", "plan", str(preset), *extra], cwd=folder,
                                    capture_output=True, text=True)
            after = os.times()
            cpu.append(after.children_user + after.children_system - before.children_user - before.children_system)
            times.append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"plan failed: {result.stderr}")
        probe = ("import sys\nfrom scheduler.cli import app\n"
                 f"try: app(['plan', {str(preset)!r}, *{list(extra)!r}])\nexcept SystemExit: pass\n"
                 f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
        output = subprocess.run([sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True).stdout
        heavy = output.rsplit("HEAVY=", 1)[-1].strip()
    print(f"wattsweep plan presets/{preset.name}{''.join(' ' + e for e in extra)}: median "
          f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {rounds} runs; CPU "
          f"{statistics.median(cpu):.2f} s; target < 2 s); heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    for preset in PRESETS:
        main(preset)
    main(PRESETS[0], extra=("--workers", "64"))  # issue 10: expected makespan, lower bound, model loads
