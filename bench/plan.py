"""`wattsweep plan` on the whole study (issue 6). Prints the figure; asserts nothing.

Wall time of `wattsweep plan presets/power-hungry-processing.yaml` in a fresh
process (118 jobs, 3,460 runs, no database yet), median of 5 (target: < 2 s),
and the heavy modules it must not import.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "presets" / "power-hungry-processing.yaml"
HEAVY = ("torch", "transformers", "diffusers", "codecarbon", "datasets", "huggingface_hub")


def main(rounds: int = 5) -> None:
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "scheduler", "plan", str(PRESET)], cwd=folder,
                                    capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"plan failed: {result.stderr}")
        probe = ("import sys\nfrom scheduler.cli import app\n"
                 f"try: app(['plan', {str(PRESET)!r}])\nexcept SystemExit: pass\n"
                 f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
        output = subprocess.run([sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True).stdout
        heavy = output.rsplit("HEAVY=", 1)[-1].strip()
    print(f"wattsweep plan presets/power-hungry-processing.yaml: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {rounds} runs; target < 2 s); "
          f"heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()
