"""Device state read through the simulated node's fake NVML: values follow the profile, MIG leads to the parent."""

from __future__ import annotations

import pytest

from tests.simnode import SimNode
from tests.simnode.inprocess import fake_nvml
from worker.measure.device_state import (
    DeviceStateError,
    DeviceStateReader,
    group_state,
    no_state_columns,
    throttle_reason_names,
)


def test_state_follows_the_profile_and_is_stored_as_columns(tmp_path, monkeypatch):
    node = SimNode(tmp_path, gpus=4)
    node.set_power(at=node.data["segments"][0]["at"] + 0.5, temperature_c={2: 71.0}, sm_clock_mhz={2: 1200},
                   power_limit_w={2: 300.0}, throttle_reasons={2: 0x4 | 0x40}, gpu_w={2: 280.0})
    nvml = fake_nvml(node, monkeypatch)
    with DeviceStateReader(2, nvml=nvml) as reader:
        state = reader.read()
        assert reader.describe() == {"index": 2, "name": node.gpus[2]["name"], "uuid": node.gpus[2]["uuid"]}
    assert (state.temperature_c, state.sm_clock_mhz, state.power_limit_w, state.power_w) == (71, 1200, 300, 280)
    assert state.slowed_down and throttle_reason_names(state.throttle_reasons) == ["sw-power-cap",
                                                                                     "hw-thermal-slowdown"]
    assert state.energy_mj > 0
    assert state.columns("start") == {"gpu_temperature_start_c": 71.0, "gpu_sm_clock_start_mhz": 1200.0,
                                      "gpu_power_limit_start_w": 300.0, "gpu_throttle_start": 0x44}
    assert set(no_state_columns("end")) == set(state.columns("end")) and not any(no_state_columns("end").values())
    assert nvml._initialized == 0  # NVML closed again


def test_a_mig_slice_is_read_through_its_parent(tmp_path, monkeypatch):
    node = SimNode(tmp_path, gpus=8, mig={5: 3})
    nvml = fake_nvml(node, monkeypatch)
    with DeviceStateReader(mig_uuid=node.gpus[5]["mig"][2]["uuid"], nvml=nvml) as reader:
        assert (reader.gpu_index, reader.is_mig) == (5, True)  # not 2, the slice's index inside GPU 5
        assert reader.read().energy_mj is not None  # the parent's counter: a slice has none
        assert reader.describe()["uuid"] == node.gpus[5]["uuid"]


def test_unknown_devices_are_one_line_errors(tmp_path, monkeypatch):
    nvml = fake_nvml(SimNode(tmp_path, gpus=2), monkeypatch)
    with pytest.raises(DeviceStateError, match=r"GPU 7: this host has 2 GPU\(s\)"):
        DeviceStateReader(7, nvml=nvml)
    with pytest.raises(DeviceStateError, match="NVML cannot open MIG-nope"):
        DeviceStateReader(mig_uuid="MIG-nope", nvml=nvml)
    assert nvml._initialized == 0
    assert throttle_reason_names(0) == [] and throttle_reason_names(0x1 | 0x1000) == ["gpu-idle", "0x1000"]


def test_a_groups_state_is_its_worst_gpu_and_its_whole_budget(tmp_path, monkeypatch):
    """One worker on GPUs 0-3: the hottest GPU, the slowest clock, every throttle reason, the sum of the limits."""
    node = SimNode(tmp_path, gpus=4)
    node.set_power(at=node.data["segments"][0]["at"] + 0.5, temperature_c={1: 80.0}, sm_clock_mhz={3: 900},
                   power_limit_w={2: 250.0}, throttle_reasons={0: 0x4, 1: 0x40, 2: 0x0, 3: 0x0})
    nvml = fake_nvml(node, monkeypatch)
    readers = [DeviceStateReader(index, nvml=nvml) for index in range(4)]
    states = [reader.read() for reader in readers]
    for reader in readers:
        reader.close()
    group = group_state(states)
    assert (group.temperature_c, group.sm_clock_mhz) == (80.0, 900.0)
    assert group.power_limit_w == sum(s.power_limit_w for s in states) == 400 + 400 + 250 + 700  # 2 A100, 2 H100
    assert group.throttle_reasons == 0x44 and group.slowed_down
    assert group.energy_mj == sum(state.energy_mj for state in states)
    assert group_state(states[2:3]) is states[2]  # one GPU: its own state
    from dataclasses import replace

    assert group_state([states[0], replace(states[1], energy_mj=None)]).energy_mj is None  # not a partial sum
