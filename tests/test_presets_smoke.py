"""The smoke preset (the study's shape with tiny models) runs end to end through `wattsweep run`, then plans."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from db.models import Job, Measurement, Run
from db.session import session_factory

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE = REPO_ROOT / "presets" / "power-hungry-processing-smoke.yaml"


def wattsweep(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_")}
    # No idle baseline: 20 s of idling says nothing about the path under test.
    env |= {"HF_HUB_OFFLINE": "1", "WATTSWEEP_BASELINE_WINDOW_S": "0", "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_smoke_preset_runs_every_task_and_kind_of_model_then_plans_from_its_results(tmp_path):
    result = wattsweep("run", str(SMOKE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    with session_factory(f"sqlite:///{tmp_path / 'wattsweep.db'}")() as session:
        jobs = session.scalars(select(Job)).all()
        assert len(jobs) == 15 and {job.status for job in jobs} == {"done"}
        assert Counter(job.model_kind for job in jobs) == {"task-specific": 10, "multi-purpose": 5}
        assert all(job.model_dtype == "float32" and job.num_parameters > 0 for job in jobs)
        assert all(job.model_revision is None for job in jobs)  # tiny: models have no Hub commit
        assert {run.status for run in session.scalars(select(Run))} == {"done"}
        queries = session.scalars(select(Measurement).where(Measurement.phase == "query")).all()
        assert len(queries) == 30 and all(m.energy_kwh > 0 for m in queries)
        qa_zero_shot = {j.id for j in jobs if j.task == "question-answering" and j.model_kind == "multi-purpose"}
        zero_shot_qa = [m for m in queries if m.job_id in qa_zero_shot]
        assert {m.output_tokens for m in zero_shot_qa} == {2 * 8}  # the preset's QA length, fixed

    plan = wattsweep("plan", str(SMOKE), cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "estimates: 15 of 15 jobs from earlier runs" in plan.stdout and "unknown" not in plan.stdout


AIES_SMOKE = REPO_ROOT / "presets" / "ai-energy-score-smoke.yaml"


def test_ai_energy_score_smoke_preset_runs_all_eleven_tasks_rates_and_labels(tmp_path):
    result = wattsweep("run", str(AIES_SMOKE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with session_factory(f"sqlite:///{tmp_path / 'wattsweep.db'}")() as session:
        jobs = session.scalars(select(Job)).all()
        assert len({job.task for job in jobs}) == 11 and {job.status for job in jobs} == {"done"}
        assert sorted(j.reasoning for j in jobs if j.task == "reasoning") == ["off", "on"]
        queries = session.scalars(select(Measurement).where(Measurement.phase == "query")).all()
        assert len(queries) == 13 and all(m.energy_kwh > 0 and m.latency_p95_s > 0 for m in queries)
        # The protocol's settings, as used: reasoning off exactly 10 tokens a query; sampling as asked, seeded;
        # speech and captions greedy with one beam and exactly their length; a chat template where there is one.
        job_of = {j.id: j for j in jobs}
        tokens = {(job_of[m.job_id].task, job_of[m.job_id].model, job_of[m.job_id].reasoning): m.output_tokens
                  for m in queries}
        assert tokens[("reasoning", "tiny:gpt2", "off")] == 2 * 10
        assert tokens[("automatic-speech-recognition", "tiny:whisper", None)] == 2 * 4
        assert tokens[("image-to-text", "tiny:vit-gpt2", None)] == 2 * 4
        decoding = {(j.task, j.model, j.reasoning): j.decoding for j in jobs}
        assert decoding[("text-generation", "tiny:ministral3", None)] == {
            "do_sample": True, "num_beams": 1, "temperature": 0.7, "top_p": 0.9, "top_k": 50, "seed": 1234,
            "chat_template": True}
        assert decoding[("text-generation", "tiny:gpt2", None)]["chat_template"] is False  # GPT-2 has none
        assert decoding[("automatic-speech-recognition", "tiny:whisper", None)].items() >= {
            "do_sample": False, "num_beams": 1}.items()
        assert {j.temperature for j in jobs if j.task == "text-generation"} == {0.7}
    report = wattsweep("report", "--rating-energy", "headline", cwd=tmp_path)
    assert report.returncode == 0 and "AI Energy Score rating: headline energy" in report.stdout
    label = wattsweep("label", "ai-energy-score-smoke", "--model", "tiny:whisper", "--task",
                      "automatic-speech-recognition", "--rating-energy", "headline", cwd=tmp_path)
    assert label.returncode == 0, label.stderr
    assert (tmp_path / "tiny-whisper-automatic-speech-recognition-label.png").stat().st_size > 1000
    # By GPU energy (AI Energy Score's rule, the default) a CPU run has nothing to rate: no 5 stars for 0 Wh.
    by_gpu = wattsweep("label", "ai-energy-score-smoke", "--model", "tiny:whisper", "--task",
                       "automatic-speech-recognition", "--out", str(tmp_path / "by-gpu"), cwd=tmp_path)
    assert by_gpu.returncode == 0, by_gpu.stderr
    assert "not rated (no GPU energy measured" in by_gpu.stdout
    svg = (tmp_path / "by-gpu.svg").read_text()
    assert "not rated: no GPU energy measured" in svg and "5 of 5 stars" not in svg
    assert "protocol: AI Energy Score&#x27;s (sweep ai-energy-score-smoke)" in svg
