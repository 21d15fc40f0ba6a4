"""Issue 21: what a job needs. `model_gpus` per model (a number, or `auto` from the weights' size on disk against
`gpu_memory_gb`), stored as jobs.gpus, shown by `plan`, refused where a workload cannot span GPUs or local mode
has one device."""

from __future__ import annotations

import dataclasses
import math

import pytest
from sqlalchemy import select

from db.models import Job
from db.session import session_factory
from scheduler.plan.expand import expand
from scheduler.spec.reading import SpecError, parse_sweep
from tests.helpers import wattsweep_cli
from worker.contract.weights import checkpoint_bytes

SWEEP = {"name": "groups", "hardware_class": "h100", "carbon": {"grid_intensity_g_per_kwh": 100},
         "defaults": {"queries": 2, "repetitions": 1, "warmup": 0},
         "tasks": {"fill-mask": {"models": ["tiny:bert", "hub:org/big"], "datasets": ["builtin:texts"]}}}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny model saved as a checkpoint folder (safetensors), and its weights' size in bytes."""
    from worker.models.tiny import build_tiny

    folder = tmp_path_factory.mktemp("bert")
    build_tiny("bert", "fill-mask").save_pretrained(folder)
    return folder, checkpoint_bytes(folder)


def _with(**fields):
    return parse_sweep(SWEEP | fields)


def test_a_declared_number_of_gpus_goes_with_each_job_of_the_model():
    jobs = expand(_with(model_gpus={"hub:org/big": 4}))
    assert {job.model: job.gpus for job in jobs} == {"tiny:bert": 1, "hub:org/big": 4}


def test_auto_takes_the_fewest_gpus_whose_memory_less_the_headroom_holds_the_saved_weights(saved_model):
    folder, size = saved_model
    on_disk = sum(path.stat().st_size for path in folder.glob("*.safetensors"))
    assert 0.9 * on_disk < size < on_disk  # the tensors' bytes, from the headers: the file less its header
    ref = f"path:{folder}"
    sweep = SWEEP | {"tasks": {"fill-mask": {"models": ["tiny:bert", ref], "datasets": ["builtin:texts"]}}}
    memory_gb = size / 1e9 / 2.6  # one GPU holds 1 / 2.6 of the weights: 3 GPUs, or 4 with 20% headroom
    for headroom, expected in ((0.0, 3), (0.2, 4), (0.7, math.ceil(2.6 / 0.3))):
        spec = parse_sweep(sweep | {"model_gpus": {ref: "auto", "tiny:bert": "auto"}, "gpu_memory_gb": memory_gb,
                                    "gpu_memory_headroom": headroom})
        assert {job.model: job.gpus for job in expand(spec)} == {"tiny:bert": 1, ref: expected}


@pytest.mark.parametrize(("fields", "message"), [
    ({"model_gpus": {"hub:org/big": 0}}, "model_gpus.hub:org/big"),
    ({"model_gpus": {"hub:org/big": 65}}, "model_gpus.hub:org/big"),
    ({"model_gpus": {"hub:org/big": "two"}}, "model_gpus.hub:org/big"),
    ({"model_gpus": {"hub:org/big": 2.5}}, "model_gpus.hub:org/big"),
    ({"model_gpus": {"hub:org/other": 2}}, "model_gpus: 'hub:org/other' is not a model of this sweep"),
    ({"model_gpus": {"hub:org/big": "auto"}}, "model_gpus.hub:org/big: auto needs gpu_memory_gb"),
    ({"model_gpus": {"hub:org/big": "auto"}, "gpu_memory_gb": 80},
     "model_gpus.hub:org/big: auto needs the size of its weights, but it is not in the local Hugging Face cache "
     "(`wattsweep pull FILE` puts it there); declare the number of GPUs instead, e.g. model_gpus: {hub:org/big: 2}"),
    ({"gpu_memory_gb": 0}, "gpu_memory_gb"),
    ({"gpu_memory_headroom": 1.0}, "gpu_memory_headroom"),
    ({"hardware_class": "h100-x4"}, "hardware_class: hardware class 'h100-x4' ends in '-x4': that is the queue of "
                                    "class 'h100' for jobs that need 4 GPUs; pick another name"),
])
def test_bad_gpu_declarations_are_one_line_naming_the_field(fields, message):
    with pytest.raises(SpecError) as error:
        parse_sweep(SWEEP | fields)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_auto_on_a_folder_without_safetensors_names_the_model_and_the_fix(tmp_path):
    ref = f"path:{tmp_path}"
    sweep = SWEEP | {"tasks": {"fill-mask": {"models": [ref], "datasets": ["builtin:texts"]}}}
    with pytest.raises(SpecError, match=r"no \.safetensors files in its folder; declare the number of GPUs"):
        parse_sweep(sweep | {"model_gpus": {ref: "auto"}, "gpu_memory_gb": 80})


def test_a_task_whose_workload_cannot_span_gpus_refuses_a_multi_gpu_model_at_submit(monkeypatch):
    from worker.contract import tasks

    single = dataclasses.replace(tasks.TASKS["fill-mask"], multi_gpu=False)
    monkeypatch.setitem(tasks.TASKS, "fill-mask", single)
    with pytest.raises(SpecError) as error:
        parse_sweep(SWEEP | {"model_gpus": {"hub:org/big": 2}})
    assert str(error.value) == ("sweep: tasks.fill-mask.models.1: hub:org/big needs 2 GPUs, but fill-mask cannot "
                                "load a model across GPUs; measure it on one GPU (model_gpus: {hub:org/big: 1}) or "
                                "under another task")
    parse_sweep(SWEEP | {"model_gpus": {"hub:org/big": 1}})  # one GPU: fine


def test_jobs_gpus_is_stored_at_submit_and_defaults_to_one(sqlite_url):
    from scheduler.plan.submit import create_sweep

    sessions = session_factory(sqlite_url)
    with sessions.begin() as session:
        create_sweep(session, _with(model_gpus={"hub:org/big": 8}), mode="distributed")
        create_sweep(session, parse_sweep(SWEEP), mode="distributed")
    with sessions() as session:
        rows = session.execute(select(Job.sweep_id, Job.model, Job.gpus).order_by(Job.id)).all()
    assert [tuple(row) for row in rows] == [(1, "tiny:bert", 1), (1, "hub:org/big", 8), (2, "tiny:bert", 1),
                                            (2, "hub:org/big", 1)]


def test_local_mode_refuses_a_sweep_with_a_multi_gpu_job_before_writing_anything(sqlite_url, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: local-groups\ncarbon: {grid_intensity_g_per_kwh: 100}\n"
                     "defaults: {queries: 2, repetitions: 1, warmup: 0}\n"
                     "tasks:\n  fill-mask:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n"
                     "model_gpus: {tiny:bert: 2}\n")
    result = wattsweep_cli(sqlite_url, "run", str(sweep))
    assert result.exit_code == 2
    assert "tiny:bert needs 2 GPUs, but `wattsweep run` runs on one device" in " ".join(result.output.split())
    with session_factory(sqlite_url)() as session:
        assert session.scalar(select(Job.id)) is None


def test_plan_workers_splits_the_gpus_into_pools_and_bounds_by_gpu_seconds():
    from scheduler.plan.simulate import SimJob, simulate_pools, split_gpus
    from scheduler.plan.workers import make_schedule

    assert split_gpus({1: 90.0, 4: 10.0}, 8) == {1: 4, 4: 1}  # one worker of each size at least
    assert split_gpus({1: 90.0, 4: 10.0}, 256) == {1: 228, 4: 7}  # the slowest pool has the least work per GPU
    assert split_gpus({1: 1.0}, 8) == {1: 8}
    with pytest.raises(ValueError, match="3 GPUs cannot hold one worker of each size"):
        split_gpus({1: 1.0, 4: 1.0}, 3)
    # Two 4-GPU jobs of 100 s on one group, eight 1-GPU jobs of 100 s on four workers: 200 s each pool; the bound
    # counts GPU-seconds: (2 x 4 x 100 + 8 x 100) / 8 GPUs = 200 s.
    jobs = [(SimJob(i, [100.0]), 4) for i in range(2)] + [(SimJob(10 + i, [100.0]), 1) for i in range(8)]
    result = simulate_pools(jobs, {4: 1, 1: 4})
    assert (result.makespan_s, result.lower_bound_s, result.model_loads) == (200.0, 200.0, 10)
    spec = _with(model_gpus={"hub:org/big": 4}, defaults={"queries": 1000, "repetitions": 4, "warmup": 0})
    schedule = make_schedule(spec, workers=8)
    assert schedule.pools == {1: 4, 4: 1} and schedule.makespan_s >= schedule.lower_bound_s
    assert schedule.total_s == pytest.approx(sum(gpus * s for gpus, s in _gpu_seconds(spec)))


def _gpu_seconds(spec):
    from scheduler.plan.submit import jobs_with_units

    return [(job.gpus, seconds) for job in jobs_with_units(spec, None, {}, {}) for run in job.runs
            for _, seconds in run["shards"]]


def test_auto_sizes_a_hub_model_from_its_snapshot_in_the_local_cache(saved_model, tmp_path, monkeypatch):
    """The Hugging Face cache's layout (refs/main names a commit, snapshots/<commit>/ holds the files), read
    without the network: what `wattsweep pull` leaves on a shared disk."""
    import shutil

    from huggingface_hub import constants

    folder, size = saved_model
    repo = tmp_path / "hub" / "models--org--big"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = _with(model_gpus={"hub:org/big": "auto"}, gpu_memory_gb=size / 1e9 / 1.5, gpu_memory_headroom=0)
    assert {job.model: job.gpus for job in expand(spec)} == {"tiny:bert": 1, "hub:org/big": 2}


def test_plan_prints_the_gpus_per_job_and_the_pools_of_its_workers(sqlite_url, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: plan-groups\nhardware_class: h100\ncarbon: {grid_intensity_g_per_kwh: 100}\n"
                     "defaults: {queries: 1000, repetitions: 4, warmup: 0}\n"
                     "tasks:\n  fill-mask:\n    models: [tiny:bert, hub:org/big]\n    datasets: [builtin:texts]\n"
                     "model_gpus: {hub:org/big: 4}\n")
    result = wattsweep_cli(sqlite_url, "plan", str(sweep), "--jobs", "--workers", "8")
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    assert ("GPUs per job: 1 job(s) need 1 GPU (queue h100); 1 job(s) need 4 GPUs (queue h100-x4, workers started "
            "with --gpus holding 4)") in out
    assert "fill-mask / hub:org/big (task-specific): 4 runs, 4 GPUs," in out
    assert "with 8 GPUs (4 workers of 1 GPU + 1 worker of 4 GPUs): expected makespan" in out
    assert "GPU-h / 8 GPUs (the longest unit as submitted" in out and "bounds nothing: claims split it)" in out


def test_pull_fetches_what_auto_will_size_while_plan_names_the_fix(tmp_path):
    """`auto` needs the weights on this machine; `pull`, which puts them there, must not need them first."""
    from tests.helpers import wattsweep

    (tmp_path / "sweep.yaml").write_text(
        "name: auto\nhardware_class: h100\ncarbon: {grid_intensity_g_per_kwh: 100}\n"
        "tasks:\n  fill-mask:\n    models: [hub:org/big]\n    datasets: [builtin:texts]\n"
        "model_gpus: {hub:org/big: auto}\ngpu_memory_gb: 80\n")
    env = {"HF_HOME": str(tmp_path / "hf")}  # an empty cache, offline (tests.helpers.wattsweep_env)
    planned = wattsweep("plan", "sweep.yaml", cwd=tmp_path, env=env)
    assert planned.returncode == 2
    assert "model_gpus.hub:org/big: auto needs the size of its weights, but it is not in the local Hugging Face " \
           "cache" in " ".join(planned.stderr.split())
    pulled = wattsweep("pull", "sweep.yaml", cwd=tmp_path, env=env)
    assert pulled.returncode == 1 and "auto needs" not in pulled.stderr
    assert "missing hub:org/big: HF_HUB_OFFLINE=1 and not in the local cache" in " ".join(pulled.stdout.split())
