"""Issue 18, defects 6, 7 and 10 on the simulated node: a worker's meter judges and polls only its own GPU.

The fake NVML refuses what the real one refuses (utilisation of a MIG-enabled GPU; no energy counter on an
older board), so another GPU of the node must change nothing in this worker's windows: its method stays
`nvml-energy-counter`, and no CodeCarbon warning (one a second, before) lands in its flags.
"""

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

meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[0])
with meter.window("query") as window:
    time.sleep(2.5)  # CodeCarbon polls utilisation once a second
r = window.reading
meter.close()
out = {"gpu_method": r.gpu_method, "flags": r.flags, "warnings": r.codecarbon_warnings, "gpu_uuid": r.gpu_uuid,
       "gpu_energy_kwh": r.gpu_energy_kwh}
mig = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[1], mig_uuid=sys.argv[1])  # a worker on a slice of GPU 1
with mig.window("query") as window:
    time.sleep(2.5)
mig.close()
out["mig_flags"] = window.reading.flags
print(json.dumps(out))
"""


def test_another_gpu_without_counter_or_with_mig_changes_nothing_in_this_workers_windows(tmp_path):
    node = SimNode(tmp_path / "node", gpus=3, mig={1: 2}, nvml_update_s=0.01)
    node.gpus[2]["energy_counter"] = False  # an older board beside ours
    with node:
        result = subprocess.run(node.wrap([sys.executable, "-c", PROBE, node.gpus[1]["mig"][0]["uuid"]]),
                                env=node.env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["gpu_uuid"] == node.gpus[0]["uuid"]
    assert out["gpu_method"] == "nvml-energy-counter"  # GPU 2's missing counter is not ours (defect 6)
    assert out["gpu_energy_kwh"] > 0
    assert "codecarbon-warning" not in (out["flags"] or ""), out["warnings"]  # GPU 1's MIG refusals (defect 7)
    assert out["warnings"] is None
    # A worker on a slice polls its own MIG-enabled GPU: NVML's refusal is named, not an unknown warning.
    mig_flags = out["mig_flags"].split(",")
    assert "gpu-utilization-unavailable" in mig_flags and "codecarbon-warning" not in mig_flags


def test_the_fake_nvml_refuses_what_nvml_refuses(tmp_path, monkeypatch):
    import ctypes

    from tests.simnode.inprocess import fake_nvml

    nvml = fake_nvml(SimNode(tmp_path / "node", gpus=2, mig={1: 2}), monkeypatch)
    nvml.nvmlInit()
    whole, mig_enabled = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    assert nvml.nvmlDeviceGetUtilizationRates(whole).gpu >= 0
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetUtilizationRates(mig_enabled)
    answer = nvml.nvmlDeviceIsMigDeviceHandle(nvml.nvmlDeviceGetMigDeviceHandleByIndex(mig_enabled, 0))
    assert isinstance(answer, ctypes.c_uint) and answer.value == 1
    assert nvml.nvmlDeviceIsMigDeviceHandle(whole).value == 0


UUID_CHECK = r"""
import json, os, sys
from worker.process.pinning import PinningError, apply_pinning, check_torch_device, plan_pinning, read_gpu
from worker.process.pinning import torch_device_uuid

pinning = plan_pinning(gpu=int(sys.argv[1]), device=None, hostname="node", pid=1)
apply_pinning(pinning)
if sys.argv[2] == "no-order":  # a launcher that lost CUDA_DEVICE_ORDER: CUDA numbers fastest first
    os.environ.pop("CUDA_DEVICE_ORDER")
try:
    check_torch_device(pinning, read_gpu(pinning.gpu_index)["uuid"], torch_device_uuid(simulated=True))
    print(json.dumps("ok"))
except PinningError as error:
    print(json.dumps(str(error)))
"""


def test_the_torch_versus_nvml_uuid_check_runs_on_the_simulated_node(tmp_path):
    node = SimNode(tmp_path / "node", gpus=4)
    assert node.cuda_fastest_first()[0] != 0  # CUDA's default order differs from NVML's here
    with node:
        def check(order: str) -> str:
            result = subprocess.run(node.wrap([sys.executable, "-c", UUID_CHECK, "0", order]), env=node.env(),
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr[-3000:]
            return json.loads(result.stdout.strip().splitlines()[-1])

        assert check("pci") == "ok"
        assert "refusing to run" in check("no-order")
