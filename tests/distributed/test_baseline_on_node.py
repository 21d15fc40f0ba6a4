"""The idle baseline of a real `wattsweep worker --gpu N` on the simulated GPU node, whose profile the test changes.

The GPU is still cooling down (200 W to 60 W over 9 s) when the first job arrives: the baseline waits until its
power holds steady and measures the settled 60 W, not the hot start. Then the GPU runs 16 °C warmer: the next
job's baseline is measured again (reason temperature-drift) and stored with the new temperature and clock.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import IdleBaseline, Measurement
from tests.distributed.conftest import sweep_yaml
from tests.helpers import start_on_node
from tests.simnode import SimNode

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)


def test_a_gpu_worker_settles_its_gpu_first_and_measures_again_when_it_runs_hotter(cluster, tmp_path, tiny_bert_dir):
    node = SimNode(tmp_path / "node", gpus=2, nvml_update_s=0.01, gpu_w=[50.0, 60.0])
    queue = f"{cluster.queue}-gpu"
    models = cluster.model_copies(tiny_bert_dir, 2)
    cluster.env["WATTSWEEP_BASELINE_SETTLE_TIMEOUT_S"] = "60"  # (submitting takes seconds; cooling takes 9)
    with node:
        worker = start_on_node(cluster, node, "gpu1", queue, "--gpu", "1")
        worker.wait_ready()
        start = time.time()
        node.set_power(at=start + 0.1, gpu_w={1: 200.0}, temperature_c={1: 40.0})  # hot from a last job
        for step in range(1, 33):  # cooling down to 60 W by start + 9 s: every 0.25 s a step of 4.4 W (> 2%)
            stable_at = node.set_power(at=start + 1.0 + 0.25 * step, gpu_w={1: 200.0 - 140.0 * step / 32})
        for index, (name, model) in enumerate([("cool", models[0]), ("hot", models[1])]):
            (cluster.folder / f"{name}.yaml").write_text(sweep_yaml(name, [model], queries=5))
            result = cluster.wattsweep("submit", f"{name}.yaml", "--hardware-class", queue)
            assert result.returncode == 0, result.stderr
            cluster.wait_for(cluster.finished, f"sweep {name} to drain", timeout_s=240, logs=[worker])
            if index == 0:
                node.set_power(temperature_c={1: 56.0}, sm_clock_mhz={1: 1300})
                time.sleep(0.5)
        with cluster.sessions() as session:
            baselines = session.scalars(select(IdleBaseline).order_by(IdleBaseline.id)).all()
            windows = session.scalars(select(Measurement).where(Measurement.phase == "query")
                                      .order_by(Measurement.id)).all()
    assert [b.reason for b in baselines] == ["first", "temperature-drift"], worker.log()[-3000:]
    first, second = baselines
    assert first.settled is True and first.measured_at.timestamp() >= stable_at + 0.5  # settle window: 0.5 s
    assert first.gpu_power_w == pytest.approx(60.0, rel=0.05)  # the settled idle, not the cooling GPU's
    assert (first.gpu_temperature_c, second.gpu_temperature_c, second.gpu_sm_clock_mhz) == (40.0, 56.0, 1300.0)
    assert first.gpu_power_limit_w == node.gpus[1]["max_power_w"] and not first.flags
    assert [w.baseline_id for w in windows] == [first.id, second.id]
    assert windows[1].idle_gpu_energy_kwh == pytest.approx(second.gpu_power_w * windows[1].duration_s / 3.6e6)
