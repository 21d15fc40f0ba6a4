"""Real `wattsweep worker` processes on the simulated GPU node: a pinned GPU worker beside a CPU worker.

Two sweeps with two carbon settings, so that every worker holds two meters: the second CPU tracker is the one
CodeCarbon's hardware cache handed every GPU. CODECARBON_PUE and WATTSWEEP_MEASURE_POWER_SECS=0 are set on every
worker: neither may change a figure or break a window.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Measurement
from tests.distributed.conftest import sweep_yaml
from tests.helpers import start_on_node
from tests.simnode import SimNode

ok, why = SimNode.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)


def test_cpu_worker_beside_a_gpu_worker_meters_no_gpu_and_the_gpu_worker_its_own_gpu(cluster, tmp_path, tiny_bert_dir):
    node = SimNode(tmp_path / "node", gpus=4, nvml_update_s=0.01)
    gpu_queue, cpu_queue = f"{cluster.queue}-gpu", f"{cluster.queue}-cpu"
    with node:
        workers = [start_on_node(cluster, node, "gpu2", gpu_queue, "--gpu", "2"),
                   start_on_node(cluster, node, "cpu", cpu_queue, "--device", "cpu", "--name", "cpu0@node")]
        for worker in workers:
            worker.wait_ready()
        models = cluster.model_copies(tiny_bert_dir, 4)
        fra = "{country_iso_code: FRA}"
        for name, queue, refs, carbon in (("gpu", gpu_queue, models[:2], None), ("cpu-grid", cpu_queue, models[2:3],
                                          None), ("cpu-fra", cpu_queue, models[3:], fra)):
            text = sweep_yaml(name, refs, queries=10)
            (cluster.folder / f"{name}.yaml").write_text(text.replace("{grid_intensity_g_per_kwh: 100}", carbon)
                                                         if carbon else text)
            result = cluster.wattsweep("submit", f"{name}.yaml", "--hardware-class", queue)
            assert result.returncode == 0, result.stderr
        cluster.wait_for(cluster.finished, "the sweeps to drain", timeout_s=300, logs=workers)
        with cluster.sessions() as session:
            windows = session.scalars(select(Measurement)).all()
    by_worker: dict[str, list[Measurement]] = {}
    for window in windows:
        by_worker.setdefault(window.worker_id.split("@")[0], []).append(window)
    assert set(by_worker) == {"gpu2", "cpu0"}, {w: len(v) for w, v in by_worker.items()}
    assert all(w.pue == 1.0 for w in windows)  # CODECARBON_PUE=1.5 changed nothing
    for window in by_worker["cpu0"]:
        assert (window.gpu_energy_kwh, window.gpu_method, window.gpu_count, window.gpu_uuid) == (0.0, "none", 0, None)
    reads = {2: node.gpu_counter_reads(2)}
    for index in (2,):
        for window in by_worker[f"gpu{index}"]:
            assert (window.gpu_count, window.gpu_model, window.gpu_uuid) == \
                (1, node.gpus[index]["name"], node.gpus[index]["uuid"])
            assert window.gpu_method == "nvml-energy-counter" and "simulated-gpu" in window.flags
            assert window.gpu_temperature_start_c == 34.0 + index
            assert window.gpu_power_limit_end_w == node.gpus[index]["max_power_w"]
            # The worker metered its own GPU's counter, not the node's four: exactly that counter between the
            # reads that opened and closed the window. (Over the window's stamps, short windows are tens of percent
            # off: the counter's 10 ms steps, and a loaded machine's delays between CodeCarbon's clock and reads.)
            _, _, counted_j = node.gpu_counter_window(index, window.started_at.timestamp(),
                                                      window.ended_at.timestamp(), reads=reads[index])
            assert window.gpu_energy_kwh * 3.6e6 == pytest.approx(counted_j, rel=1e-6, abs=1e-3)
    carbon = {(w.worker_id.split("@")[0], w.carbon_intensity_source) for w in windows}
    assert {("cpu0", "explicit"), ("cpu0", "country mix")} <= carbon  # the CPU worker did hold two meters
