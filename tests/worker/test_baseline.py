"""The idle baseline: taken on a settled GPU, measured again on temperature drift or per run, kept clear of busy
neighbours, and stored per component with the device's state.

The GPU is the simulated node's (its fake NVML loaded in this process, tests/simnode/inprocess.py): the test
changes its power and temperature profile while the code under test reads it. CPU and RAM go through the real
CodeCarbon; settle windows and waits are shortened (seconds) through BaselinePolicy, as WATTSWEEP_BASELINE_*
would in production.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.models import IdleBaseline, Job, Measurement, Shard, Worker
from tests.simnode import SimNode
from tests.simnode.inprocess import fake_nvml
from worker.measure.baseline import BaselinePolicy, remeasure_reason, wait_until_settled
from worker.measure.device_state import DeviceStateReader

FAST = dict(window_s=0.3, settle_tolerance=0.02, settle_window_s=0.6, settle_timeout_s=4.0, settle_interval_s=0.05,
            neighbour_wait_s=1.0)


@pytest.fixture
def gpu(tmp_path, monkeypatch):
    """GPU 1 of a simulated 2-GPU node: (node, reader)."""
    node = SimNode(tmp_path / "node", gpus=2)
    reader = DeviceStateReader(1, nvml=fake_nvml(node, monkeypatch))
    yield node, reader
    reader.close()


def test_the_baseline_waits_until_the_gpu_power_is_stable(gpu):
    node, reader = gpu
    start = time.time()
    for offset, watts in [(0.3, 210.0), (0.6, 150.0), (0.9, 110.0), (1.2, 95.0)]:  # a hot GPU cooling down
        node.set_power(at=start + offset, gpu_w={1: watts})
    settling = wait_until_settled(lambda: reader.read().power_w, tolerance=0.02, window_s=0.6, timeout_s=5.0,
                                  interval_s=0.05)
    assert settling.settled is True and settling.power_w == 95.0
    assert time.time() - start >= 1.2 + 0.6  # the last change, then a whole settle window at one power
    assert settling.waited_s < 3.0


def test_a_gpu_that_never_settles_times_out_and_says_so(gpu):
    node, reader = gpu
    start = time.time()
    for step in range(40):  # 100 W and 120 W in turn every 0.1 s: never within 2%
        node.set_power(at=start + 0.2 + 0.1 * step, gpu_w={1: 100.0 + 20.0 * (step % 2)})
    settling = wait_until_settled(lambda: reader.read().power_w, tolerance=0.02, window_s=0.5, timeout_s=1.5,
                                  interval_s=0.05)
    assert settling.settled is False and 1.5 <= settling.waited_s < 2.5
    # Within the tolerance is settled: 1% of noise on a 100 W GPU
    assert wait_until_settled(iter([100.0, 100.5, 99.6, 100.2] * 20).__next__, tolerance=0.02, window_s=0.15,
                              timeout_s=2.0, interval_s=0.05).settled is True
    assert wait_until_settled(lambda: None, tolerance=0.02, window_s=5, timeout_s=5, interval_s=1).settled is None


def test_remeasure_reasons():
    policy = BaselinePolicy(max_age_s=100.0, drift_c=10.0)
    current = {"at": 0.0, "temperature_c": 40.0, "used": True}
    assert remeasure_reason(current=None, now=0.0, temperature_c=None, policy=policy) == "first"
    assert remeasure_reason(current=current, now=100.0, temperature_c=40.0, policy=policy) == "age"
    assert remeasure_reason(current=current, now=1.0, temperature_c=50.0, policy=policy) is None  # 10 °C: kept
    assert remeasure_reason(current=current, now=1.0, temperature_c=50.5, policy=policy) == "temperature-drift"
    assert remeasure_reason(current=current, now=1.0, temperature_c=29.0, policy=policy) == "temperature-drift"
    assert remeasure_reason(current=current, now=1.0, temperature_c=None, policy=policy) is None  # CPU worker
    assert remeasure_reason(current=current, now=1.0, temperature_c=40.0, policy=policy, per_run=True) == "per-run"
    fresh = current | {"used": False}  # taken since the last run: that run's own already
    assert remeasure_reason(current=fresh, now=1.0, temperature_c=40.0, policy=policy, per_run=True) is None


class SimulatedGpuMeter:
    """A real CodeCarbon meter (CPU and RAM) that reads its GPU's state from the simulated node's NVML."""

    def __init__(self, meter, reader) -> None:
        self.meter, self.reader = meter, reader

    def window(self, name):
        return self.meter.window(name)

    def device_state(self):
        return self.reader.read()


@pytest.fixture
def runtime(sqlite_url, gpu):
    from db.session import session_factory
    from worker.measure.meter import Meter
    from worker.process.runtime import WorkerRuntime

    node, reader = gpu
    runtime = WorkerRuntime(worker_id="gpu1@sim", device="cpu", hardware_class="sim", host_id="kernel-1",
                            hostname="sim", sessions=session_factory(sqlite_url), baseline_window_s=FAST["window_s"])
    runtime.baseline_policy = lambda: BaselinePolicy(**FAST)
    runtime.register()
    meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=[])
    yield runtime, SimulatedGpuMeter(meter, reader), node
    meter.close()
    runtime.close()


def baselines(runtime) -> list[IdleBaseline]:
    with runtime.sessions() as session:
        return list(session.scalars(select(IdleBaseline).order_by(IdleBaseline.id)))


def test_measured_again_when_the_gpu_is_10_c_off_and_stored_with_its_state(runtime):
    runtime, meter, node = runtime
    node.set_power(temperature_c={1: 40.0}, sm_clock_mhz={1: 1410}, power_limit_w={1: 400.0}, gpu_w={1: 60.0})
    time.sleep(0.35)
    first = runtime.ensure_baseline(meter)
    assert runtime.ensure_baseline(meter, for_run=True) == first  # same temperature: kept
    node.set_power(temperature_c={1: 49.0})
    time.sleep(0.35)
    assert runtime.ensure_baseline(meter, for_run=True) == first  # 9 °C warmer: still kept
    node.set_power(temperature_c={1: 55.0}, sm_clock_mhz={1: 1200}, throttle_reasons={1: 0x20})
    time.sleep(0.35)
    second = runtime.ensure_baseline(meter, for_run=True)  # 15 °C warmer than the first baseline
    assert second != first
    assert runtime.ensure_baseline(meter, for_run=True) == second  # measured hot: kept while hot
    old, new = baselines(runtime)
    assert (old.reason, new.reason) == ("first", "temperature-drift")
    assert (old.gpu_temperature_c, old.gpu_sm_clock_mhz, old.gpu_power_limit_w) == (40.0, 1410.0, 400.0)
    assert (new.gpu_temperature_c, new.gpu_sm_clock_mhz, new.gpu_throttle_reasons) == (55.0, 1200.0, 0x20)
    assert old.settled is True and old.settle_s >= FAST["settle_window_s"] and not old.flags
    for row in (old, new):  # idle energy per component, consistent with the powers
        for component in ("cpu", "gpu", "ram"):
            energy, power = getattr(row, f"{component}_energy_kwh"), getattr(row, f"{component}_power_w")
            assert energy is not None and energy * 3.6e6 / row.duration_s == pytest.approx(power)
    with runtime.sessions() as session:
        assert session.get(Worker, "gpu1@sim").baseline_since is None  # the marker is cleared afterwards


def test_per_run_measures_before_every_run_and_a_gpu_that_will_not_settle_is_flagged(runtime):
    runtime, meter, node = runtime
    first = runtime.ensure_baseline(meter)  # at load
    assert runtime.ensure_baseline(meter, for_run=True, per_run=True) == first  # the first run uses the load's
    start = time.time()
    for step in range(80):  # 100 W and 130 W in turn: the next baseline cannot settle
        node.set_power(at=start + 0.2 + 0.1 * step, gpu_w={1: 100.0 + 30.0 * (step % 2)})
    second = runtime.ensure_baseline(meter, for_run=True, per_run=True)
    third = runtime.ensure_baseline(meter, for_run=True, per_run=True)
    assert len({first, second, third}) == 3
    rows = baselines(runtime)
    assert [r.reason for r in rows] == ["first", "per-run", "per-run"]
    assert rows[1].settled is False and rows[1].flags == "gpu-not-settled"
    assert FAST["settle_timeout_s"] <= rows[1].settle_s < FAST["settle_timeout_s"] + 1


def test_a_busy_neighbour_is_waited_for_then_flagged(runtime):
    """A co-located worker (same host id, another worker id) holding a unit runs a window: the baseline waits
    for it, up to neighbour_wait_s, then is taken and flagged. A neighbour measuring its own baseline is idle."""
    runtime, meter, node = runtime
    neighbour = _neighbour_holding_a_unit(runtime)
    began = time.monotonic()
    runtime.ensure_baseline(meter)
    assert time.monotonic() - began >= FAST["neighbour_wait_s"]
    assert baselines(runtime)[-1].flags == "neighbours-busy"

    with runtime.sessions.begin() as session:  # the neighbour is taking its own baseline: not busy
        session.execute(update(Worker).where(Worker.id == neighbour).values(baseline_since=datetime.now(UTC)))
    runtime._baseline = None
    runtime.ensure_baseline(meter)
    assert baselines(runtime)[-1].flags is None

    with runtime.sessions.begin() as session:  # a neighbour's window overlapping the baseline, stored meanwhile
        session.execute(update(Shard).values(status="done", lease_worker_id=None))
        session.add(Measurement(job_id=session.scalar(select(Job.id)), phase="load", worker_id=neighbour,
                                host_id="kernel-1", started_at=datetime.now(UTC),
                                ended_at=datetime.now(UTC) + timedelta(seconds=10), duration_s=10.0,
                                energy_kwh=0.0, cpu_energy_kwh=0.0, gpu_energy_kwh=0.0, ram_energy_kwh=0.0,
                                emissions_kg=0.0, cpu_method="x", gpu_method="x", ram_method="x",
                                tracking_mode="process", codecarbon_version="3", carbon_intensity_source="explicit"))
    runtime._baseline = None
    runtime.ensure_baseline(meter)
    assert baselines(runtime)[-1].flags == "neighbours-busy"


def _neighbour_holding_a_unit(runtime) -> str:
    from db.queue.live import register_worker
    from scheduler.plan.submit import create_sweep
    from scheduler.spec.reading import parse_sweep

    spec = parse_sweep({"name": "n", "defaults": {"queries": 1, "repetitions": 1},
                        "carbon": {"grid_intensity_g_per_kwh": 100},
                        "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}}})
    with runtime.sessions.begin() as session:
        register_worker(session, worker_id="gpu0@sim", token="t0", hostname="sim-other-container",
                        host_id="kernel-1", device="cuda:0", hardware_class="sim", inventory={}, twin_window_s=None)
        create_sweep(session, spec, mode="distributed")
        session.flush()
        session.execute(update(Shard).values(status="running", lease_worker_id="gpu0@sim", lease_token="t0",
                                             lease_heartbeat_at=datetime.now(UTC)))
    return "gpu0@sim"
