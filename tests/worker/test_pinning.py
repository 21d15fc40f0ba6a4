"""GPU pinning with the NVML layer replaced (no GPU here): names, environment, gpu_ids, inventory, errors."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from worker.process.pinning import PinningError, apply_pinning, plan_pinning, read_gpu


class FakeNvml:
    """Two GPUs as NVML reports them; records calls so that we can see init/shutdown pair up."""

    def __init__(self, count: int = 2, fail_init: bool = False) -> None:
        self.count, self.fail_init, self.calls = count, fail_init, []

    def nvmlInit(self):
        self.calls.append("init")
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA A100-SXM4-80GB" if handle == 1 else "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle:04d}"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in {f"GPU-{i:04d}" for i in range(self.count)}:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return int(uuid.removeprefix("GPU-"))

    def nvmlDeviceGetIndex(self, handle):
        return handle

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=f"00000000:{handle + 7:02X}:00.0")

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=80 * 2**30)

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return 12040


def test_gpu_worker_sees_one_device_and_meters_the_physical_one():
    pinning = plan_pinning(gpu=3, device=None, hostname="node7", pid=42)
    assert pinning.worker_id == "gpu3@node7"
    assert pinning.device == "cuda:0"  # the only GPU torch can see
    assert pinning.gpu_ids == [3]  # CodeCarbon reads NVML, which ignores CUDA_VISIBLE_DEVICES
    assert pinning.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3"}


def test_cpu_worker_hides_gpus_and_is_named_by_pid_or_name():
    pinning = plan_pinning(gpu=None, device="cpu", hostname="node7", pid=4242)
    assert (pinning.worker_id, pinning.device, pinning.gpu_ids) == ("cpu4242@node7", "cpu", None)
    assert pinning.env == {"CUDA_VISIBLE_DEVICES": ""}
    assert plan_pinning(gpu=None, device="cpu", hostname="h", pid=1, name="cpu0@rack2").worker_id == "cpu0@rack2"


@pytest.mark.parametrize(("options", "message"), [
    (dict(gpu=None, device=None), "exactly one of --gpu N"),
    (dict(gpu=0, device="cpu"), "exactly one of --gpu N"),
    (dict(gpu=None, device="cuda"), "only 'cpu' is allowed"),
    (dict(gpu=-1, device=None), "0 or more"),
    (dict(gpu=0, device=None, name="no-host"), "expected NAME@HOST"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(PinningError, match=message):
        plan_pinning(hostname="h", pid=1, **options)


def test_apply_sets_the_environment_only_before_torch(monkeypatch):
    environ: dict[str, str] = {}
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    for heavy in ("transformers", "diffusers", "codecarbon"):
        monkeypatch.delitem(sys.modules, heavy, raising=False)
    apply_pinning(plan_pinning(gpu=1, device=None, hostname="h", pid=1), environ)
    assert environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace())
    with pytest.raises(PinningError, match="torch imported before pinning"):
        apply_pinning(plan_pinning(gpu=1, device=None, hostname="h", pid=1), environ)


def test_inventory_from_nvml():
    nvml = FakeNvml()
    gpu = read_gpu(1, nvml)
    assert gpu == {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-0001", "pci_bus_id": "00000000:08:00.0",
                   "memory_gb": 80.0, "driver": "550.54.15", "cuda": "12.4"}
    assert nvml.calls == ["init", "shutdown"]


def test_inventory_errors_name_the_problem():
    with pytest.raises(PinningError, match="this host has 2 GPU\\(s\\), numbered 0 to 1"):
        read_gpu(2, FakeNvml())
    with pytest.raises(PinningError, match="NVML unavailable"):
        read_gpu(0, FakeNvml(fail_init=True))


def test_worker_pins_before_torch_is_imported(tmp_path):
    """In a real process: the worker's own start-up path leaves torch unimported until pinning is done."""
    code = (
        "import sys, os\n"
        "from worker.process.celery_worker import WorkerOptions, pin\n"
        "p = pin(WorkerOptions(queue='q', gpu=5))\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "print(p.worker_id.split('@')[0], os.environ['CUDA_VISIBLE_DEVICES'], os.environ['CUDA_DEVICE_ORDER'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gpu5", "5", "PCI_BUS_ID"]


def test_an_inherited_allocation_is_translated_to_the_physical_gpu():
    nvml = FakeNvml(count=4)
    by_index = plan_pinning(gpu=1, device=None, hostname="n", pid=1, inherited_visible="2,3")
    assert (by_index.gpu_ids, by_index.env["CUDA_VISIBLE_DEVICES"], by_index.worker_id) == ([3], "3", "gpu3@n")
    by_uuid = plan_pinning(gpu=0, device=None, hostname="n", pid=1, inherited_visible="GPU-0002,GPU-0000", nvml=nvml)
    assert (by_uuid.gpu_ids, by_uuid.env["CUDA_VISIBLE_DEVICES"]) == ([2], "GPU-0002")
    assert plan_pinning(gpu=2, device=None, hostname="n", pid=1, inherited_visible="").gpu_ids == [2]
    with pytest.raises(PinningError, match="gives this process 2 GPU"):
        plan_pinning(gpu=2, device=None, hostname="n", pid=1, inherited_visible="2,3")
    with pytest.raises(PinningError, match="NVML knows no such GPU"):
        plan_pinning(gpu=0, device=None, hostname="n", pid=1, inherited_visible="GPU-9999", nvml=nvml)


def test_a_mig_slice_pins_its_parent_gpu(tmp_path, monkeypatch):
    """nvmlDeviceGetIndex on a slice answers its index inside the parent: slice 2 of GPU 5 must meter GPU 5."""
    from tests.simnode import SimNode
    from tests.simnode.inprocess import fake_nvml

    node = SimNode(tmp_path, gpus=8, mig={5: 3})
    nvml = fake_nvml(node, monkeypatch)
    slice_uuid = node.gpus[5]["mig"][2]["uuid"]
    pinning = plan_pinning(gpu=0, device=None, hostname="n", pid=1, inherited_visible=slice_uuid, nvml=nvml)
    assert (pinning.gpu_ids, pinning.mig_uuid, pinning.env["CUDA_VISIBLE_DEVICES"]) == ([5], slice_uuid, slice_uuid)
    assert pinning.worker_id == f"gpu5-{slice_uuid[4:12]}@n"  # slices of one GPU get distinct worker ids
    whole = plan_pinning(gpu=1, device=None, hostname="n", pid=1, inherited_visible=f"x,{node.gpus[6]['uuid']}",
                         nvml=nvml)
    assert (whole.gpu_ids, whole.mig_uuid) == ([6], None)


def test_torch_must_compute_on_the_gpu_nvml_meters():
    from worker.process.pinning import check_torch_device

    pinning = plan_pinning(gpu=3, device=None, hostname="n", pid=1)
    check_torch_device(pinning, "GPU-5bd5e8ae-0000-1111-2222-333344445555", "5bd5e8ae-0000-1111-2222-333344445555")
    check_torch_device(pinning, "GPU-5BD5E8AE-0000-1111-2222-333344445555", "GPU-5bd5e8ae-0000-1111-2222-333344445555")
    with pytest.raises(PinningError, match=r"torch computes on GPU 0badc0de-.* but NVML meters GPU 3 \(GPU-5bd5"
                                           r".*CUDA_VISIBLE_DEVICES='3'.*refusing to run"):
        check_torch_device(pinning, "GPU-5bd5e8ae-0000-1111-2222-333344445555", "0badc0de-0000-1111-2222-3333")
    mig = plan_pinning(gpu=0, device=None, hostname="n", pid=1, inherited_visible="MIG-aaaa-bbbb",
                       nvml=SimpleNamespace(nvmlInit=lambda: None, nvmlShutdown=lambda: None,
                                            nvmlDeviceGetHandleByUUID=lambda u: "slice",
                                            nvmlDeviceIsMigDeviceHandle=lambda h: h == "slice",
                                            nvmlDeviceGetDeviceHandleFromMigDeviceHandle=lambda h: "parent",
                                            nvmlDeviceGetIndex=lambda h: {"slice": 2, "parent": 5}[h]))
    assert mig.gpu_ids == [5]
    check_torch_device(mig, "GPU-parent-uuid", "aaaa-bbbb")  # CUDA may name the slice
    check_torch_device(mig, "GPU-parent-uuid", "parent-uuid")  # or its parent


# --- device groups (issue 21): --gpus N,M,...


def test_a_group_is_seen_by_cuda_in_pci_order_and_metered_by_its_physical_indexes():
    pinning = plan_pinning(gpu=None, gpus="3,1,2,0", device=None, hostname="node7", pid=1)
    assert pinning.worker_id == "gpu0-3@node7"
    assert pinning.gpu_ids == [0, 1, 2, 3]  # what CodeCarbon meters; torch's cuda:i is gpu_ids[i]
    assert pinning.device == "cuda:0"
    assert pinning.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert pinning.physical_device == "cuda:0-3"
    spread = plan_pinning(gpu=None, gpus="5,0,2", device=None, hostname="n", pid=1)
    assert (spread.worker_id, spread.env["CUDA_VISIBLE_DEVICES"], spread.physical_device) == \
        ("gpus0.2.5@n", "0,2,5", "cuda:0,2,5")
    assert plan_pinning(gpu=None, gpus="4", device=None, hostname="n", pid=1).worker_id == "gpu4@n"  # a group of one
    named = plan_pinning(gpu=None, gpus="0,1", device=None, hostname="n", pid=1, name="pair@rack2")
    assert (named.worker_id, named.gpu_ids) == ("pair@rack2", [0, 1])
    import re

    for each in (pinning, spread):  # the default name must be a valid --name (and Celery node name)
        assert re.match(r"^[\w.\-]+@[\w.\-]+$", each.worker_id)


def test_a_long_group_fits_the_workers_device_column():
    every_other = plan_pinning(gpu=None, gpus=",".join(str(i) for i in range(0, 32, 2)), device=None,
                               hostname="n", pid=1)
    assert every_other.physical_device == "cuda:16-gpus"  # workers.gpu_indexes holds them all
    assert plan_pinning(gpu=None, gpus="8,9,10,11,12,13,14,15", device=None, hostname="n",
                        pid=1).physical_device == "cuda:8-15"


@pytest.mark.parametrize(("options", "message"), [
    (dict(gpu=0, gpus="1,2"), "exactly one of --gpu N .*--gpus"),
    (dict(gpus="0,1", device="cpu"), "exactly one of"),
    (dict(gpus="0,1,1"), "GPU 1 is named twice"),
    (dict(gpus="0,-1"), "'-1' is not a GPU index"),
    (dict(gpus="0,,2"), "'' is not a GPU index"),
    (dict(gpus="a,b"), "'a' is not a GPU index"),
    (dict(gpus=""), "is not a GPU index"),
    (dict(gpus="0,2", inherited_visible="4,5"), r"--gpus 2: CUDA_VISIBLE_DEVICES=4,5 gives this process 2 GPU"),
])
def test_bad_groups_are_one_line_errors(options, message):
    with pytest.raises(PinningError, match=message) as raised:
        plan_pinning(**({"gpu": None, "device": None, "hostname": "h", "pid": 1} | options))
    assert "\n" not in str(raised.value)


def test_a_group_inside_an_inherited_allocation_is_translated_to_physical_gpus():
    """Slurm gave GPUs 6,2,7,3 (by index or UUID): --gpus 0,1 means its first two, in PCI order for CUDA."""
    pinning = plan_pinning(gpu=None, gpus="0,1", device=None, hostname="n", pid=1, inherited_visible="6,2,7,3")
    assert (pinning.gpu_ids, pinning.env["CUDA_VISIBLE_DEVICES"], pinning.worker_id) == ([2, 6], "2,6", "gpus2.6@n")
    nvml = FakeNvml(count=4)
    by_uuid = plan_pinning(gpu=None, gpus="1,0", device=None, hostname="n", pid=1,
                           inherited_visible="GPU-0003,GPU-0001", nvml=nvml)
    assert (by_uuid.gpu_ids, by_uuid.env["CUDA_VISIBLE_DEVICES"]) == ([1, 3], "GPU-0001,GPU-0003")
    with pytest.raises(PinningError, match="names one GPU twice"):
        plan_pinning(gpu=None, gpus="0,1", device=None, hostname="n", pid=1, inherited_visible="3,3")


def test_a_mig_slice_in_a_group_is_refused(tmp_path, monkeypatch):
    from tests.simnode import SimNode
    from tests.simnode.inprocess import fake_nvml

    node = SimNode(tmp_path, gpus=8, mig={5: 3})
    nvml = fake_nvml(node, monkeypatch)
    slice_uuid = node.gpus[5]["mig"][0]["uuid"]
    with pytest.raises(PinningError, match=f"{slice_uuid} is a MIG slice; a group takes whole GPUs only"):
        plan_pinning(gpu=None, gpus="0,1", device=None, hostname="n", pid=1,
                     inherited_visible=f"{node.gpus[1]['uuid']},{slice_uuid}", nvml=nvml)


def test_torch_must_compute_on_every_gpu_of_the_group():
    from worker.process.pinning import check_torch_device

    pinning = plan_pinning(gpu=None, gpus="4,6", device=None, hostname="n", pid=1)
    check_torch_device(pinning, "GPU-aaaa", "aaaa", 0)
    check_torch_device(pinning, "GPU-bbbb", "bbbb", 1)
    with pytest.raises(PinningError, match=r"cuda:1 is GPU aaaa but NVML meters GPU 6 \(GPU-bbbb\): "
                                           r"CUDA_VISIBLE_DEVICES='4,6'"):
        check_torch_device(pinning, "GPU-bbbb", "aaaa", 1)


def test_a_group_on_the_simulated_node_passes_the_uuid_check_only_in_pci_order(tmp_path, monkeypatch):
    """The node's CUDA numbers fastest-first unless told PCI_BUS_ID: the group's env makes cuda:i = gpu_ids[i]."""
    from tests.simnode import SimNode
    from tests.simnode.fakelib import simnode_profile
    from worker.process.pinning import check_torch_device

    node = SimNode(tmp_path, gpus=8)
    simnode_profile.save(str(node.profile_path), node.data)
    monkeypatch.setenv(simnode_profile.ENV, str(node.profile_path))
    monkeypatch.setitem(sys.modules, "simnode_profile", simnode_profile)  # what the fake imports by name
    from tests.simnode.fakelib import simnode_cuda
    pinning = plan_pinning(gpu=None, gpus="5,3", device=None, hostname="n", pid=1)
    for key, value in pinning.env.items():
        monkeypatch.setenv(key, value)
    for ordinal, index in enumerate(pinning.gpu_ids):
        check_torch_device(pinning, node.gpus[index]["uuid"], simnode_cuda.device_uuid(ordinal), ordinal)
    monkeypatch.delenv("CUDA_DEVICE_ORDER")  # CUDA's default order: cuda:0 is another GPU than NVML's 3
    with pytest.raises(PinningError, match="NVML meters GPU 3"):
        check_torch_device(pinning, node.gpus[3]["uuid"], simnode_cuda.device_uuid(0), 0)
