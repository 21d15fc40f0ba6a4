"""`wattsweep plan`: counts, downloads, and estimates from earlier measurements (or "unknown")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job, Run
from db.results.estimates import earlier_estimates
from db.results.store import record_load, record_run
from scheduler.plan.expand import MULTI_PURPOSE
from scheduler.plan.submit import create_sweep
from scheduler.plan.workers import make_plan
from scheduler.spec.reading import load_sweep
from tests.factories import make_reading
from worker.workloads.base import WorkDone

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET = REPO_ROOT / "presets" / "power-hungry-processing.yaml"
SMOKE = REPO_ROOT / "presets" / "power-hungry-processing-smoke.yaml"


def test_the_study_plans_without_a_database():
    plan = make_plan(load_sweep(PRESET))
    assert (len(plan.jobs), plan.runs, plan.queries, plan.warmup_queries) == (118, 3460, 3_460_000, 34_600)
    assert sum(job.model_kind == MULTI_PURPOSE for job in plan.jobs) == 36
    assert len(plan.models_to_download) == 91 and "hub:bigscience/bloomz-7b1" in plan.models_to_download
    datasets = {d.ref: d.rows for d in plan.datasets_to_download}
    assert len(datasets) == 26 and datasets["hf:red_caps/roses_2020:train"] == 1010  # no column: the whole rows
    assert plan.known == [] and all(job.hours is None and job.kwh is None for job in plan.jobs)


def test_estimates_come_from_the_same_task_model_kind_and_hardware_class(sessions):
    spec = load_sweep(SMOKE)
    with sessions.begin() as session:
        sweep = create_sweep(session, spec, mode="local")
        jobs = {(j.task, j.model, j.model_kind): j for j in sweep.jobs}
        measured = jobs[("text-classification", "tiny:t5", MULTI_PURPOSE)]
        other_class = create_sweep(session, spec, mode="local", hardware_class="a100").jobs[0]
        for job, energy in ((measured, 4e-6), (other_class, 1.0)):
            record_load(session, job_id=job.id, worker_id="w", reading=make_reading(energy_kwh=1e-6, duration_s=3.0))
            for run in session.scalars(select(Run).where(Run.job_id == job.id)):
                reading = make_reading(energy_kwh=energy, duration_s=2.0)
                record_run(session, run_id=run.id, worker_id="w", reading=reading, units=WorkDone(run.n_queries))

    with sessions() as session:
        estimates = earlier_estimates(session, hardware_class="cpu")
        assert session.scalar(select(Job.model_kind).where(Job.id == measured.id)) == MULTI_PURPOSE
    assert set(estimates) == {("text-classification", "tiny:t5", MULTI_PURPOSE)}
    estimate = estimates[("text-classification", "tiny:t5", MULTI_PURPOSE)]
    assert (estimate.runs, estimate.load_s) == (2, 3.0)
    assert estimate.kwh_per_query == pytest.approx(4e-6 / 2) and estimate.s_per_query == pytest.approx(1.0)

    plan = make_plan(spec, estimates=estimates)
    [known] = plan.known
    queries = 2 * (2 + 1)  # two datasets x (2 measured + 1 warm-up)
    assert known.kwh == pytest.approx(queries * 2e-6 + 1e-6)
    assert known.hours == pytest.approx((queries * 1.0 + 3.0) / 3600)
    assert len(plan.jobs) - len(plan.known) == 14


def test_plan_command_is_light_and_says_unknown(tmp_path):
    code = (
        "import sys\n"
        "from scheduler.cli import app\n"
        f"try: app(['plan', {str(PRESET)!r}])\n"
        "except SystemExit as exit: assert exit.code in (0, None), exit.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'codecarbon', 'datasets', 'huggingface_hub')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")} | {"PYTHONPATH": str(REPO_ROOT),
                                                                                       "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "│ total" in result.stdout and "3,460,000" in result.stdout
    assert "estimates: unknown for all 118 jobs: no database at sqlite:///wattsweep.db yet" in result.stdout
    assert "to download (91 models, 26 datasets" in result.stdout
    assert "hf:c4/en:train (first 1,010 rows)" in result.stdout
    assert not (tmp_path / "wattsweep.db").exists()  # planning creates nothing


def test_plan_with_workers_gives_makespan_lower_bound_and_model_loads():
    from scheduler.plan.simulate import SimJob, lower_bound_s, simulate
    from scheduler.plan.workers import make_schedule
    from scheduler.spec.reading import parse_sweep

    spec = parse_sweep({"name": "w", "carbon": {"grid_intensity_g_per_kwh": 100},
                        "defaults": {"queries": 1000, "repetitions": 10, "warmup": 0, "max_unit_s": 600},
                        "tasks": {"text-to-image": {"models": ["hub:org/sd-1b", "tiny:stable-diffusion"],
                                                    "datasets": ["builtin:image-prompts"]}}})
    one, many = make_schedule(spec, workers=1), make_schedule(spec, workers=8)
    # The prior: ~6 s an image for a 1B-parameter diffusion model at 20 steps; its runs split to fit 600 s.
    assert (one.sharded_runs, one.units) == (10, 110) and 500 < one.longest_unit_s <= 600
    assert one.makespan_s >= one.total_s and many.makespan_s >= many.lower_bound_s
    assert many.lower_bound_s == many.total_s / 8  # GPU-seconds / GPUs: claims split the longest unit
    assert many.pools == {1: 8}
    assert many.makespan_s < one.makespan_s / 4 and 2 <= many.model_loads <= 2 * 8
    assert (one.jobs_measured, one.jobs_prior) == (0, 2)
    # The model: one job of 4 units of 10 s and one of 1 unit of 30 s on 2 workers: 30 s first, then the rest.
    result = simulate([SimJob(1, [10.0] * 4), SimJob(2, [30.0])], 2)
    assert (result.makespan_s, result.lower_bound_s) == (40.0, 35.0)
    assert lower_bound_s([10.0, 30.0], 2, join=(2, 5.0)) == 30.0
    assert lower_bound_s([10.0, 30.0], 2, join=(2, 5.0), divisible=True) == 5.0 + (40.0 - 10.0) / 4  # capacity


def test_an_imported_codecarbon_log_gives_the_estimate_its_model_is_dispatched_and_split_by(sqlite_url, tmp_path):
    """Issue 10: estimates come from earlier measurements, imported logs included; the study's logs name models by
    their Hub id, which stands for the sweep's `hub:` reference."""
    from db.session import session_factory
    from scheduler.plan.submit import planned_jobs
    from scheduler.plan.workers import make_schedule
    from scheduler.spec.reading import parse_sweep
    from tests.helpers import V2_HEADER, v2_row, wattsweep_cli

    log = tmp_path / "emissions.csv"  # three runs of 1,000 queries, 12.5 s each
    log.write_text("\n".join([V2_HEADER] + [v2_row("sim-org/past-model", "0.002")] * 3) + "\n")
    result = wattsweep_cli(sqlite_url, "import", "codecarbon", str(log), "--task", "fill-mask", "--dataset", "sst2",
                           "--queries", "1000", "--hardware-class", "a100")
    assert result.exit_code == 0, result.output
    spec = parse_sweep({"name": "again", "hardware_class": "a100", "carbon": {"grid_intensity_g_per_kwh": 100},
                        "defaults": {"queries": 1000, "repetitions": 2, "warmup": 0, "max_unit_s": 5},
                        "tasks": {"fill-mask": {"models": ["hub:sim-org/past-model", "hub:sim-org/new-model"],
                                                "datasets": ["builtin:texts"]}}})
    with session_factory(sqlite_url)() as session:
        jobs = {job.model: job for job in planned_jobs(session, spec)}
        estimates = earlier_estimates(session, hardware_class="a100")
    past, new = jobs["hub:sim-org/past-model"], jobs["hub:sim-org/new-model"]
    assert (past.estimate_source, new.estimate_source) == ("measured", "prior")
    assert past.expected_s == pytest.approx(2 * 12.5)  # 0.0125 s a query, from the log
    assert [size for size, _ in past.runs[0]["shards"]] == [334, 333, 333]  # 12.5 s split to fit 5 s
    schedule = make_schedule(spec, workers=2, estimates=estimates)
    assert (schedule.jobs_measured, schedule.jobs_prior) == (1, 1)


def test_plan_says_which_ai_energy_score_jobs_need_a_multi_gpu_worker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")} | {"PYTHONPATH": str(REPO_ROOT),
                                                                                       "COLUMNS": "400"}
    result = subprocess.run([sys.executable, "-m", "scheduler", "plan", "--jobs",
                             str(REPO_ROOT / "presets" / "ai-energy-score.yaml")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    # 8 text-generation jobs, and 12 reasoning jobs (on and off, except the two Qwen3-Next models: on only)
    assert ("GPUs per job: 108 job(s) need 1 GPU (queue h100); 2 job(s) need 2 GPUs (queue h100-x2, workers started "
            "with --gpus holding 2); 6 job(s) need 4 GPUs (queue h100-x4") in out
    assert "2 job(s) need 8 GPUs (queue h100-x8" in out and "10 job(s) need 16 GPUs (queue h100-x16" in out
    assert "text-generation / hub:zai-org/GLM-4.5-Air (task-specific): 10 runs, 4 GPUs, unknown" in out
    assert "text-generation / hub:openai-community/gpt2 (task-specific): 10 runs, 1 GPU, unknown" in out
