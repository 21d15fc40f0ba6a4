"""The meter on the simulated 8-GPU node (fake NVML and RAPL, real CodeCarbon): per-device truth.

One process holds a pinned GPU meter, a MIG-slice meter and two CPU meters (two carbon settings: the second
CPU tracker is the one CodeCarbon's hardware cache used to hand every GPU), as a node's workers would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.simnode import SimNode

ok, why = SimNode.available()


def within(measured_j: float, truth, window: dict, tolerance: float = 0.02) -> bool:
    """Between what was drawn while the window was surely open and what was drawn from just before it began to
    just after it ended (a loaded machine stretches both ends), with `tolerance` for the counters' steps."""
    low, high = truth(window["t0_in"], window["t1_in"]), truth(window["t0"], window["t1"])
    return low * (1 - tolerance) <= measured_j <= high * (1 + tolerance)

pytestmark = pytest.mark.skipif(not ok, reason=why)

PROBE = r"""
import json, os, sys, time
from worker.measure.meter import Meter

go, mig_uuid = sys.argv[1], sys.argv[2]
meters = {
    "gpu3": Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[3]),
    "cpu": Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[]),
    "cpu-fra": Meter(country_iso_code="FRA", gpu_ids=[]),
    "mig": Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[5], mig_uuid=mig_uuid),
}
from codecarbon import OfflineEmissionsTracker
from worker.measure.codecarbon_adapter import CodeCarbonTracker
raw = CodeCarbonTracker(OfflineEmissionsTracker(country_iso_code="FRA", gpu_ids=[], output_methods=[],
                                                log_level="error"))
raw.prepare_hardware()
trap = raw.hardware_kinds()  # what CodeCarbon alone gives a second CPU tracker
out = {"trap": trap}
for name, meter in meters.items():
    t0 = time.time()
    meter.begin_window("query")
    t0_in = time.time()
    if name == "gpu3":  # the test changes GPU 3's state while this window is open
        print("begun", flush=True)
        while not os.path.exists(go):
            time.sleep(0.02)
        time.sleep(1.0)
    else:
        time.sleep(1.5)
    t1_in = time.time()
    r = meter.end_window("query")
    fields = {k: v for k, v in vars(r).items() if not k.endswith("_at")}
    out[name] = {"t0": t0, "t0_in": t0_in, "t1_in": t1_in, "t1": time.time(), **fields}
print(json.dumps(out))
"""


def test_pinned_mig_and_cpu_meters_each_measure_their_own_device(tmp_path):
    node = SimNode(tmp_path / "node", gpus=8, mig={5: 3}, nvml_update_s=0.01)
    go = tmp_path / "go"
    with node:
        probe = subprocess.Popen(node.wrap([sys.executable, "-c", PROBE, str(go), node.gpus[5]["mig"][2]["uuid"]]),
                                 env=node.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert probe.stdout.readline().strip() == "begun", probe.stderr.read()[-3000:]
            node.set_power(temperature_c={3: 66.0}, sm_clock_mhz={3: 1100}, power_limit_w={3: 250.0},
                           throttle_reasons={3: 0x4 | 0x40}, gpu_w={3: 240.0})
            time.sleep(0.35)
            go.touch()
            stdout, stderr = probe.communicate(timeout=120)
        finally:
            probe.kill()
        assert probe.returncode == 0, stderr[-3000:]
        out = json.loads(stdout.strip().splitlines()[-1])

        gpu = out["gpu3"]
        assert (gpu["gpu_count"], gpu["gpu_model"], gpu["gpu_uuid"]) == (1, node.gpus[3]["name"], node.gpus[3]["uuid"])
        assert gpu["gpu_method"] == "nvml-energy-counter" and gpu["cpu_method"] == "rapl"
        assert within(gpu["gpu_energy_kwh"] * 3.6e6, lambda t0, t1: node.gpu_energy_j(3, t0, t1), gpu)
        assert gpu["gpu_power_w"] == pytest.approx(gpu["gpu_energy_kwh"] * 3.6e6 / gpu["duration_s"])
        assert gpu["gpu_power_w"] > 1.3 * 65.0  # the change to 240 W fell inside the window
        start = [gpu[f"gpu_{k}_start{u}"] for k, u in (("temperature", "_c"), ("sm_clock", "_mhz"),
                                                         ("power_limit", "_w"), ("throttle", ""))]
        end = [gpu[f"gpu_{k}_end{u}"] for k, u in (("temperature", "_c"), ("sm_clock", "_mhz"),
                                                     ("power_limit", "_w"), ("throttle", ""))]
        assert start == [37.0, 1410.0, 400.0, 0x1] and end == [66.0, 1100.0, 250.0, 0x44]
        assert gpu["cpu_tdp_w"] is None and "cpu-generic-tdp" not in (gpu["flags"] or "")  # RAPL: measured

        mig = out["mig"]  # slice 2 of GPU 5: metered through GPU 5, not GPU 2, and flagged
        assert (mig["gpu_count"], mig["gpu_uuid"]) == (1, node.gpus[5]["uuid"])
        assert within(mig["gpu_energy_kwh"] * 3.6e6, lambda t0, t1: node.gpu_energy_j(5, t0, t1), mig)
        assert "gpu-shared-mig" in mig["flags"] and mig["is_unreliable"]

        assert out["trap"].count("GPU") == 1  # CodeCarbon on its own: a second CPU tracker meters every GPU
        for name in ("cpu", "cpu-fra"):
            cpu = out[name]
            assert (cpu["gpu_energy_kwh"], cpu["gpu_method"], cpu["gpu_count"], cpu["gpu_model"]) == \
                (0.0, "none", 0, None)
            assert cpu["gpu_temperature_start_c"] is None
            assert within(cpu["cpu_energy_kwh"] * 3.6e6, node.host_energy_j, cpu)
