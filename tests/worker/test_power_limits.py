"""The power_limit_w axis below the worker process: the fake NVML as a GPU keeps limits, the limiter sets, reads back,
records and restores them (a real SQLite database), the sweep file expands the axis into jobs, and a local run (no
GPU) fails the cell with one line. Real worker processes on the simulated node: tests/test_power_limits_node.py."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from db.models import Job, PowerLimitSet
from db.retry import run_in_transaction
from db.session import session_factory
from tests.helpers import wattsweep
from tests.simnode import SimNode
from tests.simnode.inprocess import fake_nvml
from worker.measure.power_limit import PowerLimitError
from worker.process.power_limits import PowerLimiter

H100, A100 = 5, 1  # on an 8-GPU simulated node: GPUs 0-3 are A100s (100-400 W), 4-7 H100s (200-700 W)


@pytest.fixture
def node(tmp_path):
    return SimNode(tmp_path / "node", gpus=8)


def limiter(nvml, url: str, gpu_ids, worker_id: str = "gpu5@n1", mig_uuid: str | None = None) -> PowerLimiter:
    sessions = session_factory(url)
    return PowerLimiter(gpu_ids=gpu_ids, mig_uuid=mig_uuid, host_id="boot-1", worker_id=worker_id, nvml=nvml,
                        transact=lambda work: run_in_transaction(sessions, work, retry_for_s=5))


def rows(url: str) -> list[PowerLimitSet]:
    with session_factory(url)() as session:
        return list(session.scalars(select(PowerLimitSet).order_by(PowerLimitSet.id)))


def test_the_fake_nvml_keeps_limits_within_each_gpus_range_and_caps_power(node, monkeypatch):
    node.set_power(at=node.data["segments"][0]["at"] + 0.1, gpu_w={H100: 600.0})
    nvml = fake_nvml(node, monkeypatch)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(H100)
    assert nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle) == [200_000, 700_000]
    with pytest.raises(nvml.NVMLError) as refused:
        nvml.nvmlDeviceSetPowerManagementLimit(handle, 150_000)  # below the H100's minimum, as NVML refuses it
    assert refused.value.value == nvml.NVML_ERROR_INVALID_ARGUMENT
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 600_000
    nvml.nvmlDeviceSetPowerManagementLimit(handle, 300_000)
    set_at = time.time()
    assert nvml.nvmlDeviceGetPowerManagementLimit(handle) == nvml.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 300_000  # capped: the energy per query follows the limit
    before = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    time.sleep(0.5)
    after = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert (after - before) / 1000 == pytest.approx(300.0 * (time.time() - set_at), rel=0.5)  # not 600 W's
    assert node.gpu_energy_j(H100, set_at, set_at + 1) == pytest.approx(300.0, rel=1e-6)  # the truth agrees
    assert node.power_limit_w(H100) == 300.0 and node.power_limit_w(A100) == 400.0  # a file the node shares


def test_the_fake_nvml_refuses_without_permission(tmp_path, monkeypatch):
    nvml = fake_nvml(SimNode(tmp_path / "node", gpus=2, power_limit_permission=False), monkeypatch)
    nvml.nvmlInit()
    with pytest.raises(nvml.NVMLError) as refused:
        nvml.nvmlDeviceSetPowerManagementLimit(nvml.nvmlDeviceGetHandleByIndex(0), 300_000)
    assert refused.value.value == nvml.NVML_ERROR_NO_PERMISSION


def test_set_read_back_recorded_and_restored(node, monkeypatch, sqlite_url):
    nvml = fake_nvml(node, monkeypatch)
    power = limiter(nvml, sqlite_url, [H100])
    power.apply(300)
    assert (power.set_w, power.read_w, node.power_limit_w(H100)) == (300.0, 300.0, 300.0)
    [row] = rows(sqlite_url)
    assert (row.host_id, row.gpu_uuid, row.previous_w, row.set_w, row.worker_id, row.restored_at) == \
        ("boot-1", node.gpus[H100]["uuid"], 700.0, 300.0, "gpu5@n1", None)
    power.apply(450)  # the next cell: the limit to put back stays the one found first
    [row] = rows(sqlite_url)
    assert (row.previous_w, row.set_w, node.power_limit_w(H100)) == (700.0, 450.0, 450.0)
    stamped = power.stamp(_Reading())
    assert (stamped.power_limit_set_w, stamped.power_limit_read_w) == (450.0, 450.0)
    power.apply(None)  # a cell without a limit runs at the limit found
    assert node.power_limit_w(H100) == 700.0 and power.set_w is None and power.stamp(_Reading()).power_limit_set_w \
        is None
    [row] = rows(sqlite_url)
    assert row.restored_at is not None
    power.close()


def test_a_group_sets_each_of_its_gpus(node, monkeypatch, sqlite_url):
    power = limiter(fake_nvml(node, monkeypatch), sqlite_url, [4, 5, 6, 7], worker_id="gpus4-7@n1")
    power.apply(250)
    assert [node.power_limit_w(i) for i in range(8)] == [400.0] * 4 + [250.0] * 4
    assert sorted(r.gpu_uuid for r in rows(sqlite_url)) == sorted(node.gpus[i]["uuid"] for i in range(4, 8))
    power.close()
    assert [node.power_limit_w(i) for i in range(4, 8)] == [700.0] * 4
    assert all(r.restored_at is not None for r in rows(sqlite_url))


def test_a_limit_outside_the_gpus_range_is_one_line_with_the_range_and_changes_nothing(node, monkeypatch,
                                                                                         sqlite_url):
    power = limiter(fake_nvml(node, monkeypatch), sqlite_url, [A100, H100])
    with pytest.raises(PowerLimitError) as error:
        power.apply(500)  # fits the H100 (200-700 W), not the A100 (100-400 W): checked before either changes
    message = str(error.value)
    assert message == f"power_limit_w 500 W is outside GPU {A100} ({node.gpus[A100]['name']})'s range 100-400 W"
    assert (node.power_limit_w(A100), node.power_limit_w(H100)) == (400.0, 700.0) and rows(sqlite_url) == []


def test_without_permission_the_cell_fails_with_what_is_needed(tmp_path, monkeypatch, sqlite_url):
    node = SimNode(tmp_path / "node", gpus=8, power_limit_permission=False)
    power = limiter(fake_nvml(node, monkeypatch), sqlite_url, [H100])
    with pytest.raises(PowerLimitError) as error:
        power.apply(300)
    message = str(error.value)
    assert "\n" not in message and "needs root" in message and "SYS_ADMIN" in message, message
    assert node.power_limit_w(H100) == 700.0
    assert all(r.restored_at is not None for r in rows(sqlite_url))  # nothing left for a later start to restore


@pytest.mark.parametrize("gpu_ids, mig, says", [(None, False, "computes on the CPU"), ([H100], True, "MIG slice")])
def test_a_worker_without_a_gpu_of_its_own_fails_the_cell(node, monkeypatch, sqlite_url, gpu_ids, mig, says):
    power = limiter(fake_nvml(node, monkeypatch), sqlite_url, gpu_ids, mig_uuid="MIG-x" if mig else None)
    with pytest.raises(PowerLimitError, match=says):
        power.apply(300)
    power.apply(None)  # no limit: nothing to do, no NVML needed


def test_a_limit_left_by_a_killed_worker_is_restored_at_the_next_start(node, monkeypatch, sqlite_url):
    nvml = fake_nvml(node, monkeypatch)
    killed = limiter(nvml, sqlite_url, [H100])
    killed.apply(300)  # ... and the process dies: no restore
    other_gpu = limiter(nvml, sqlite_url, [6], worker_id="gpu6@n1")
    assert other_gpu.restore_left_over() == []  # not its GPU
    restarted = limiter(nvml, sqlite_url, [H100])
    [line] = restarted.restore_left_over()
    assert line == "GPU 5: power limit put back to 700 W (300 W was set by gpu5@n1, which did not restore it)"
    assert node.power_limit_w(H100) == 700.0 and rows(sqlite_url)[0].restored_at is not None
    assert restarted.restore_left_over() == []


def test_the_axis_expands_into_one_job_per_limit(tmp_path):
    from scheduler.plan.expand import expand
    from scheduler.spec.reading import parse_sweep

    spec = parse_sweep({"name": "limits", "carbon": {"grid_intensity_g_per_kwh": 100},
                        "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                                                "params": {"power_limit_w": [300, 450, 700]}}}})
    jobs = expand(spec)
    assert [j.axes["power_limit_w"] for j in jobs] == [300, 450, 700]
    assert [j.cell_key for j in jobs] == ["power_limit_w=300", "power_limit_w=450", "power_limit_w=700"]
    assert [j.params["power_limit_w"] for j in jobs] == [300, 450, 700]
    with pytest.raises(ValueError, match="power_limit_w"):
        parse_sweep({"name": "bad", "carbon": {"grid_intensity_g_per_kwh": 100},
                     "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                                             "params": {"power_limit_w": [300, -5]}}}})


def test_a_local_run_fails_a_limited_cell_with_one_line(tmp_path, sqlite_url):
    (tmp_path / "sweep.yaml").write_text(
        "name: local-limits\ncarbon: {grid_intensity_g_per_kwh: 100}\n"
        "defaults: {queries: 2, repetitions: 1, warmup: 0}\n"
        "tasks:\n  fill-mask:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n"
        "    params: {power_limit_w: 300}\n")
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env_url=sqlite_url)
    assert result.returncode == 1, result.stderr
    with session_factory(sqlite_url)() as session:
        job = session.scalars(select(Job)).one()
    assert job.status == "failed" and job.power_limit_w == 300
    assert job.last_error.startswith("power_limit_w 300 W needs a GPU") and "\n" not in job.last_error


@dataclass(frozen=True)
class _Reading:  # stands in for the meter's Reading (a frozen dataclass) with the two fields stamped
    power_limit_set_w: float | None = None
    power_limit_read_w: float | None = None


def test_workers_may_record_and_restore_limits_and_nothing_more(postgres_url):
    """Rights by duty (0022): the worker role (every node's) inserts a row and stamps it restored; it deletes none
    and cannot rewrite which limit was found."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        def may(privilege: str, column: str | None = None, role: str = "wattsweep_worker") -> bool:
            if column is None:
                return connection.execute(text(f"SELECT has_table_privilege('{role}', 'power_limits_set', "
                                               f"'{privilege}')")).scalar()
            return connection.execute(text(f"SELECT has_column_privilege('{role}', 'power_limits_set', '{column}', "
                                           f"'{privilege}')")).scalar()

        assert may("INSERT") and may("UPDATE", "restored_at") and may("UPDATE", "set_w")
        assert may("SELECT")
        assert not may("DELETE") and not may("UPDATE", "previous_w") and not may("UPDATE", "gpu_uuid")
        assert may("INSERT", role="wattsweep_app") and not may("DELETE", role="wattsweep_app")
    engine.dispose()
