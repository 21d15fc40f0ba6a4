"""The simulated node itself: the real CodeCarbon reads its fake NVML and fake RAPL, and they follow the profile."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.simnode import SimNode

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)

PROBE = """
import json, time
import pynvml
from codecarbon import OfflineEmissionsTracker
from worker.measure.codecarbon_adapter import CodeCarbonTracker
tracker = OfflineEmissionsTracker(country_iso_code="FRA", gpu_ids=[{gpu}], output_methods=[], log_level="error",
                                  allow_multiple_runs=True, measure_power_secs=1)
tracker.start_task("warm-up"); tracker.stop_task()  # CodeCarbon's first task also counts its own set-up
t0 = time.time(); tracker.start_task("w"); time.sleep({seconds}); t1 = time.time(); data = tracker.stop_task()
print(json.dumps({{"t0": t0, "t1": t1, "gpu_j": data.gpu_energy * 3.6e6, "cpu_j": data.cpu_energy * 3.6e6,
                  "hardware": [repr(h) for h in CodeCarbonTracker(tracker).hardware()], "pynvml": pynvml.__file__,
                  "simulated": getattr(pynvml, "SIMULATED", False)}}))
"""


def run_probe(node: SimNode, gpu: int, seconds: float, hostname: str | None = None) -> dict:
    code = PROBE.format(gpu=gpu, seconds=seconds)
    result = subprocess.run(node.wrap([sys.executable, "-c", code], hostname=hostname), env=node.env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_real_codecarbon_reads_the_fake_nvml_and_rapl(tmp_path):
    with SimNode(tmp_path / "node", gpus=8, nvml_update_s=0.01) as node:
        out = run_probe(node, gpu=5, seconds=2.0)
        assert out["simulated"] and "fakelib" in out["pynvml"]
        assert "CPU(Intel Rapl)" in out["hardware"]  # CodeCarbon found RAPL at the real path, in the namespace
        assert out["gpu_j"] == pytest.approx(node.gpu_energy_j(5, out["t0"], out["t1"]), rel=0.02)
        assert out["cpu_j"] == pytest.approx(node.host_energy_j(out["t0"], out["t1"]), rel=0.02)
    import os

    assert not os.path.exists("/sys/class/powercap/intel-rapl/subsystem")  # outside the namespace: nothing mounted


def test_counters_follow_a_profile_changed_while_a_process_reads_them(tmp_path):
    with SimNode(tmp_path / "node", gpus=2, nvml_update_s=0.01, rapl_range_uj=40 * 10**6) as node:
        probe = subprocess.Popen(node.wrap([sys.executable, "-c", PROBE.format(gpu=1, seconds=6.0)]),
                                 env=node.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)
        node.set_power(gpu_w={1: 300.0}, package_w=[200.0, 150.0])
        stdout, stderr = probe.communicate(timeout=120)
        assert probe.returncode == 0, stderr[-3000:]
        out = json.loads(stdout.strip().splitlines()[-1])
        expected_gpu = node.gpu_energy_j(1, out["t0"], out["t1"])
        assert expected_gpu > 1.3 * 55.0 * (out["t1"] - out["t0"])  # the change fell inside the window
        assert out["gpu_j"] == pytest.approx(expected_gpu, rel=0.02)
        # 40 J of range wraps every 0.3 s at 125 W: CodeCarbon, reading only at the window's ends, loses nearly all.
        assert node.rapl_wrap_s() < 0.3
        assert out["cpu_j"] < 0.2 * node.host_energy_j(out["t0"], out["t1"])


def test_devices_pci_order_differs_from_cuda_order_and_mig_slices_lead_to_their_parent(tmp_path):
    node = SimNode(tmp_path / "node", gpus=8, mig={5: 3})
    assert node.cuda_fastest_first() == [4, 5, 6, 7, 0, 1, 2, 3]
    with node:
        os_env = node.env()
        slice_uuid = node.gpus[5]["mig"][2]["uuid"]
        code = (f"import pynvml, json; pynvml.nvmlInit(); s = pynvml.nvmlDeviceGetHandleByUUID({slice_uuid!r}); "
                "p = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(s); "
                "print(json.dumps([pynvml.nvmlDeviceIsMigDeviceHandle(s).value, pynvml.nvmlDeviceGetIndex(s), "
                "pynvml.nvmlDeviceGetIndex(p), pynvml.nvmlDeviceGetMigMode(p)[0]]))")
        result = subprocess.run([sys.executable, "-c", code], env=os_env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [1, 2, 5, 1]  # the slice answers 2: its index inside GPU 5
    assert sorted(p.name for p in node.dev_dir.iterdir())[:2] == ["nvidia-uvm", "nvidia0"]
