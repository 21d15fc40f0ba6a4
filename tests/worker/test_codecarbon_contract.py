"""The installed CodeCarbon still has every internal the adapter relies on (worker.measure.codecarbon_adapter).

Each name in RELIED_ON is looked up on a real object of its owner, built offline: the tracker the way the meter
makes it (every setting passed, hardware found), its RAM, a CPU in RAPL mode over a small powercap tree, a GPU
object (no NVML here: no devices), or, for a module or a method, the owner itself. A failure names the owner and
the attribute, and why the adapter needs it.
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path

import pytest

from worker.measure import codecarbon_adapter
from worker.measure.codecarbon_adapter import (
    CPU,
    EMISSIONS_DATA_FIELDS,
    GPU,
    RAM,
    RAPL,
    RAPL_FILE,
    RELIED_ON,
    TRACKER,
    CodeCarbonTracker,
    Relied,
    cpu_facts,
)

RANGE_UJ = 262_143_328_850


def resolve(dotted: str):
    """The module, or the class `module.Class`, that `dotted` names; a clear failure when it is gone."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError):
        pass
    pytest.fail(f"the installed CodeCarbon has no {dotted}, which worker/measure/codecarbon_adapter.py uses")


def powercap(folder):
    """A one-package RAPL tree, as /sys/class/powercap/intel-rapl/subsystem has it."""
    domain = folder / "intel-rapl:0"
    domain.mkdir(parents=True)
    (domain / "name").write_text("package-0\n")
    (domain / "energy_uj").write_text("1000\n")
    (domain / "max_energy_range_uj").write_text(f"{RANGE_UJ}\n")
    return folder


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codecarbon")
    tracker = CodeCarbonTracker.made(country_iso_code=None, region=None, grid_intensity_g_per_kwh=100.0, gpu_ids=[],
                                     pue=1.0, output_dir=str(folder))
    tracker.prepare_hardware()
    yield tracker, folder
    tracker.stop()


def _fields_only(owner: str):
    """An object of a dataclass whose fields have no class default, built without its __init__ (which asks NVML):
    its class's names plus the fields the installed version declares."""
    import dataclasses

    cls = resolve(owner)
    holder = cls.__new__(cls)
    for declared in dataclasses.fields(cls):
        object.__setattr__(holder, declared.name, None)
    return holder


@pytest.fixture(scope="module")
def instances(made):
    """A real object per owner class whose instances carry the relied-on names."""
    tracker, folder = made
    rapl_dir = powercap(folder / "powercap")
    cpu = resolve(CPU)(output_dir=str(folder), mode="intel_rapl", model="Contract CPU", tdp=100,
                       rapl_dir=str(rapl_dir))
    gpu = resolve(GPU)(gpu_ids=[])
    domain = rapl_dir / "intel-rapl:0"
    return {
        TRACKER: tracker.emissions_tracker,
        CPU: cpu,
        RAM: next(h for h in tracker.hardware() if type(h).__name__ == "RAM"),
        GPU: gpu,
        "codecarbon.core.gpu.AllGPUDevices": gpu.devices,
        "codecarbon.core.gpu_nvidia.NvidiaGPUDevice": _fields_only("codecarbon.core.gpu_nvidia.NvidiaGPUDevice"),
        RAPL: resolve(RAPL)(rapl_dir=str(rapl_dir)),
        RAPL_FILE: resolve(RAPL_FILE)(name="package-0", path=str(domain / "energy_uj"),
                                      max_path=str(domain / "max_energy_range_uj")),
        "codecarbon.external.task.Task": resolve("codecarbon.external.task.Task")("contract"),
    }


@pytest.mark.parametrize("relied", RELIED_ON, ids=lambda r: f"{r.owner.rsplit('.', 1)[-1]}.{r.name}")
def test_every_relied_on_name_is_there(relied: Relied, instances):
    holder = instances[relied.owner] if relied.owner in instances else resolve(relied.owner)
    assert hasattr(holder, relied.name), (
        f"the installed CodeCarbon's {relied.owner} has no {relied.name!r}, which "
        f"worker/measure/codecarbon_adapter.py relies on: {relied.why}")


def test_every_private_name_the_adapter_reads_is_listed():
    source = Path(codecarbon_adapter.__file__).read_text()
    read = set(re.findall(r"(?<!self)\.(_[a-z]\w*)", source)) | set(re.findall(r'"(_[a-z]\w*)"', source))
    unlisted = read - {relied.name for relied in RELIED_ON}
    assert not unlisted, f"codecarbon_adapter.py reads {sorted(unlisted)} without listing them in RELIED_ON"


def test_hardware_classes_have_the_names_the_adapter_compares():
    # The adapter (like CodeCarbon's own hardware cache) tells hardware objects apart by class name.
    for dotted, kind in ((CPU, "CPU"), (RAM, "RAM"), (GPU, "GPU")):
        assert resolve(dotted).__name__ == kind, f"{dotted} is no longer called {kind}"


def test_the_tracker_made_as_the_meter_makes_it_holds_its_settings_and_hardware(made):
    tracker, _ = made
    held = tracker.held_settings()
    assert "?" not in held.values(), f"settings CodeCarbon no longer keeps where the adapter looks: {held}"
    assert held["pue"] == 1.0 and held["force_carbon_intensity_g_co2e_kwh"] == 100.0
    assert {"CPU", "RAM"} <= set(tracker.hardware_kinds())


def test_a_rapl_cpu_gives_its_counters_through_the_adapter(instances):
    facts = cpu_facts(instances[CPU])
    assert (facts.mode, facts.model, facts.tdp_w) == ("intel_rapl", "Contract CPU", 100.0)
    assert len(facts.rapl) == 1, "CodeCarbon's RAPL reader no longer lists the counters where the adapter looks"
    counter = facts.rapl[0]
    assert counter.path.endswith("intel-rapl:0/energy_uj") and not counter.skipped
    assert counter.range_j == pytest.approx(RANGE_UJ / 1e6)


def test_a_task_read_through_the_adapter(made):
    """start_task, a mid-window reading, the running totals and clock, stop_task's fields, and the forced close."""
    tracker, _ = made
    tracker.start_task("contract")
    assert tracker.active_task == "contract"
    time.sleep(0.1)
    tracker.measure_now()
    assert abs(tracker.last_reading_epoch_s() - time.time()) < 5
    cpu_kwh, ram_kwh = tracker.totals_kwh()
    assert cpu_kwh >= 0 and ram_kwh > 0
    data = tracker.stop_task("contract")
    missing = [name for name in EMISSIONS_DATA_FIELDS if not hasattr(data, name)]
    assert not missing, f"CodeCarbon's EmissionsData has no {missing}, which the meter reads"
    tracker.start_task("left-open")
    tracker.close_task()
    assert tracker.active_task is None
