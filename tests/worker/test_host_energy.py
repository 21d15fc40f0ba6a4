"""The host energy sampler on the simulated node: real CodeCarbon reading a fake RAPL that wraps many times."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.simnode import SimNode

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

PROBE = r"""
import json, sys, time
from worker.measure.meter import Meter

meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[])
with meter.window("warm-up"):
    time.sleep(0.2)
with meter.window("query") as window:
    time.sleep(float(sys.argv[1]))
r = window.reading
print(json.dumps({"t0": r.started_at.timestamp(), "t1": r.ended_at.timestamp(), "cpu_j": r.cpu_energy_kwh * 3.6e6,
                  "samples": r.host_samples, "flags": r.flags, "method": r.cpu_method,
                  "period_s": meter._host_energy.period_s, "wrap_s": meter._host_energy.wrap_s}))
meter.close()
"""


def test_a_window_ten_rapl_wraps_long_is_right(tmp_path):
    # 100 J of counter range: 0.25 s to wrap at the package's 400 W maximum, 1 s at the 100 W it draws.
    node = SimNode(tmp_path / "node", gpus=0, rapl_range_uj=100 * 10**6, package_w=[100.0, 100.0])
    node.data["rapl"]["max_power_uw"] = 400 * 10**6
    with node:
        window_s = 10 * node.rapl_wrap_s()
        result = subprocess.run(node.wrap([sys.executable, "-c", PROBE, str(window_s)]), env=node.env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        truth_j = node.host_energy_j(out["t0"], out["t1"])
    assert out["method"] == "rapl" and out["wrap_s"] == pytest.approx(0.25)
    assert out["period_s"] == pytest.approx(0.125)  # half a wrap at full power: never two wraps between readings
    assert truth_j > 10 * 2 * 100  # both sockets' counters wrapped ten times each
    assert out["cpu_j"] == pytest.approx(truth_j, rel=0.02)  # CodeCarbon's own task figure, read that often
    assert sum(out["samples"]["cpu_j"]) == pytest.approx(out["cpu_j"], rel=1e-4)  # the series it is made of
    assert len(out["samples"]["t_s"]) >= window_s / 0.125 * 0.5
