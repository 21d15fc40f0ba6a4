"""`wattsweep export SWEEP --format aienergyscore --model M`: the files parse as AI Energy Score's tools read
them (results_aggregator.py: `summary`, `energy.gpu_energy_wh`, Wh per 1,000 queries = gpu_energy_wh /
successful_prompts x 1,000; summarize_gpu_wh.py: the v2 layout recognised by `energy.gpu_energy_wh`, its total
written with two decimals to GPU_ENERGY_WH.txt)."""

from __future__ import annotations

import json

import pytest

from db.session import session_factory
from tests.helpers import wattsweep
from tests.results_data import SeedModel, seed_sweep


@pytest.fixture
def measured(tmp_path, migrated_sqlite):
    url = migrated_sqlite(tmp_path / "wattsweep.db")
    with session_factory(url).begin() as session:  # 1,000 queries a run; GPU = 0.7 x: 0.7, 1.4, 2.1 Wh a run
        seed_sweep(session, name="ai-energy-score", hardware_class="h100",
                   spec_extra={"protocol": "aienergyscore"}, models=[
            SeedModel("text-generation", "hub:lab/model-7b", [0.001, 0.002, 0.003], num_parameters=7_000_000_000),
            SeedModel("fill-mask", "hub:lab/model-7b", [0.001])])
    return url


def as_results_aggregator_reads(report: dict) -> dict:
    """The figures AI Energy Score's results_aggregator.py takes from a benchmark_report.json."""
    summary, energy = report.get("summary", {}), report.get("energy", {})
    gpu_wh, ok = energy.get("gpu_energy_wh", 0), summary.get("successful_prompts", 0)
    return {"gpu_energy_wh": gpu_wh, "successful_prompts": ok, "total_prompts": summary.get("total_prompts", 0),
            "wh_per_1000_queries": gpu_wh / ok * 1000 if ok and gpu_wh > 0 else 0,
            "total_tokens": summary.get("total_tokens", 0)}


def as_summarize_gpu_wh_reads(report: dict) -> tuple[str, float]:
    """summarize_gpu_wh.py: which layout it detects, and the total it writes."""
    if "energy" in report and "gpu_energy_wh" in report["energy"]:
        return "ai_energy_benchmarks", float(report["energy"].get("gpu_energy_wh", 0.0))
    return "optimum", 0.0


def test_the_submission_parses_as_ai_energy_scores_tools_read_it(measured, tmp_path):
    result = wattsweep("export", "ai-energy-score", "--format", "aienergyscore", "--model", "hub:lab/model-7b",
                       "--task", "text-generation", "--out", str(tmp_path / "sub"), cwd=tmp_path, env_url=measured)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "sub" / "benchmark_report.json").read_text())
    read = as_results_aggregator_reads(report)
    assert read["successful_prompts"] == read["total_prompts"] == 1000
    assert read["gpu_energy_wh"] == pytest.approx(1.4)  # the mean run: (0.7 + 1.4 + 2.1) / 3
    assert read["wh_per_1000_queries"] == pytest.approx(1.4)
    layout, total = as_summarize_gpu_wh_reads(report)
    assert layout == "ai_energy_benchmarks"
    assert (tmp_path / "sub" / "GPU_ENERGY_WH.txt").read_text() == f"{total:.2f}\n" == "1.40\n"
    assert report["wattsweep"]["gpu_wh_per_run"] == pytest.approx([0.7, 1.4, 2.1])
    assert report["wattsweep"]["protocol"].startswith("AI Energy Score's")


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "hub:lab/model-7b"], "ran fill-mask, text-generation in sweep ai-energy-score; name one with --task"),
    (["--model", "hub:nope"], "--model hub:nope: not in sweep ai-energy-score"),
    ([], "--format aienergyscore: name the model with --model"),
])
def test_a_submission_names_one_cell(measured, tmp_path, args, message):
    result = wattsweep("export", "ai-energy-score", "--format", "aienergyscore", *args, "--out",
                       str(tmp_path / "sub"), cwd=tmp_path, env_url=measured)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sub").exists()
