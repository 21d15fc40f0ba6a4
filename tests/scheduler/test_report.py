"""`wattsweep report`: table, CSV, JSON and the self-contained HTML report (opened in headless Chromium)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db.session import session_factory
from scheduler.cli import app
from scheduler.report.data import CAR_G_PER_KM, ReportOptions, break_even, equivalents, match_training
from tests.results_data import SeedModel, seed_sweep
from tests.scheduler.browser import chromium_path, visit

runner = CliRunner()
BLOOMZ = "hub:bigscience/bloomz-7b1"


def wattsweep(url: str, *args: str):
    return runner.invoke(app, [*args, "--database-url", url], catch_exceptions=False)


@pytest.fixture
def study(sqlite_url):
    """A small study-like sweep: two tasks, task-specific and multi-purpose models, parameter counts."""
    with session_factory(sqlite_url).begin() as session:
        seed_sweep(session, name="study", spec_extra={"training_energy_kwh": {"bigscience/bloomz-3b": 25634}},
                   models=[
                       SeedModel("text-classification", "hub:distilbert-base-uncased", [0.002, 0.0022],
                                 num_parameters=66_000_000),
                       SeedModel("text-classification", BLOOMZ, [0.0872, 0.0872], kind="multi-purpose",
                                 num_parameters=7_069_016_064),
                       SeedModel("text-classification", "hub:bigscience/bloomz-3b", [0.073], kind="multi-purpose"),
                       SeedModel("text-to-image", "hub:stabilityai/sdxl", [11.5, 11.5], num_parameters=3_500_000_000),
                   ])
        seed_sweep(session, name="nothing-yet", models=[SeedModel("fill-mask", "hub:m", [], pending_runs=3)])
    return sqlite_url


def test_table_is_the_default(study):
    result = wattsweep(study, "report", "study")
    assert result.exit_code == 0
    assert "text-to-image" in result.output and "kWh per 1,000 queries by task" in result.output


def test_csv_and_json(study, tmp_path):
    rows = list(csv.DictReader(io.StringIO(wattsweep(study, "report", "study", "--format", "csv").output)))
    assert [r["task"] for r in rows] == ["text-classification", "text-to-image"]
    assert float(rows[1]["kwh_per_1k_mean"]) == pytest.approx(11.5)
    out = tmp_path / "r.json"
    assert wattsweep(study, "report", "study", "-f", "json", "--out", str(out)).exit_code == 0
    document = json.loads(out.read_text())
    assert {m["model"] for m in document["models"]} >= {BLOOMZ, "hub:stabilityai/sdxl"}
    assert document["break_even"][0]["model"] == "hub:bigscience/bloomz-3b"  # declared in the sweep file


def test_multi_purpose_vs_task_specific(study, tmp_path):
    # text-classification: distilbert (mean 0.0021) vs bloomz-7b1 (0.0872) and bloomz-3b (0.073): median 0.0801.
    ratio = ((0.0872 + 0.073) / 2) / 0.0021
    document = json.loads(wattsweep(study, "report", "study", "-f", "json").output)
    comparison = {c["task"]: c for c in document["kind_comparison"]}
    tc = comparison["text-classification"]
    assert (tc["task_specific_models"], tc["multi_purpose_models"]) == (1, 2)
    assert tc["task_specific_kwh_per_1k_median"] == pytest.approx(0.0021)
    assert tc["multi_purpose_kwh_per_1k_median"] == pytest.approx(0.0801)
    assert tc["ratio"] == pytest.approx(ratio) and 38.1 < ratio < 38.2
    assert comparison["text-to-image"]["ratio"] is None and comparison["text-to-image"]["multi_purpose_models"] == 0
    assert {(k["task"], k["model_kind"]) for k in document["model_kinds"]} == {
        ("text-classification", "task-specific"), ("text-classification", "multi-purpose"),
        ("text-to-image", "task-specific")}
    out = tmp_path / "report.html"
    assert wattsweep(study, "report", "study", "-f", "html", "-o", str(out)).exit_code == 0
    section = out.read_text().split("<h2>Multi-purpose vs task-specific models</h2>", 1)[1].split("<h2>", 1)[0]
    assert "38.1×" in section and "0.0801" in section and "0.0021" in section
    assert "On the 1 task(s) with both kinds, multi-purpose models used 38.1×" in section
    assert section.count("<svg") == 1 and "text-classification: multi-purpose" in section

    with session_factory(study).begin() as session:
        seed_sweep(session, name="one-kind", models=[SeedModel("fill-mask", "hub:bert", [0.001])])
    assert wattsweep(study, "report", "one-kind", "-f", "html", "-o", str(out)).exit_code == 0
    section = out.read_text().split("<h2>Multi-purpose vs task-specific models</h2>", 1)[1].split("<h2>", 1)[0]
    assert "This sweep measured only task-specific models, so there is no multi-purpose vs task-specific " \
           "comparison" in section and "<svg" not in section
    assert json.loads(wattsweep(study, "report", "one-kind", "-f", "json").output)["kind_comparison"] == [
        {"task": "fill-mask", "task_specific_models": 1, "task_specific_kwh_per_1k_median": pytest.approx(0.001),
         "multi_purpose_models": 0, "multi_purpose_kwh_per_1k_median": None, "ratio": None}]


def test_equivalents_and_break_even_reproduce_the_study():
    # SDXL: 11.5 kWh and 1,594 g CO2e per 1,000 images ~ 523 phone charges and ~6.5 km by car (the study: 6.6 km).
    task = {"task": "text-to-image", "kwh_per_1k_model_mean": 11.5, "g_co2e_per_1k_mean": 1594.0}
    row = equivalents([task], ReportOptions())[0]
    assert row["phone_charges_per_1k"] == pytest.approx(11.5 / 0.022)
    assert row["car_km_per_1k"] == pytest.approx(1594 / CAR_G_PER_KM) and 6.4 < row["car_km_per_1k"] < 6.7
    # BLOOMz 7b1: 51,686 kWh of training / 8.72e-5 kWh per inference ~ 592.7 M inferences (Table 5: 592.6 M).
    training = match_training([BLOOMZ], {"bloomz-7b1": 51686})
    model = {"task": "text-classification", "model": BLOOMZ, "kwh_per_1k_mean": 0.0872}
    be = break_even([model], training, ReportOptions(daily_queries=1_000_000))[0]
    assert be["inferences_to_match_training"] == pytest.approx(592.7e6, rel=1e-3)
    assert be["days_at_daily_queries"] == pytest.approx(592.7, rel=1e-3)


def test_html_report_is_self_contained(study, tmp_path):
    out = tmp_path / "report.html"
    result = wattsweep(study, "report", "study", "-f", "html", "-o", str(out), "--training-energy",
                       "bloomz-7b1=51686", "--phone-charge-kwh", "0.012", "--car-g-per-km", "250")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert forbidden not in html
    assert not re.findall(r"""(?:src|href)\s*=""", html)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}  # a namespace
    for heading in ("Energy per task", "Table 2", "Models within each task", "Energy and model size",
                    "Everyday equivalents", "Training vs inference", "Provenance"):
        assert heading in html
    assert html.count("<svg") == 5  # per task, one per task's models (2), energy vs parameters, model kinds
    assert "One smartphone charge = 0.012 kWh" in html and "250.0 g CO2e per km" in html
    assert "592.7 M" in html and "25,634" in html  # both training energies: command line and sweep file
    assert "rapl" in html and "codecarbon-dimm-estimate (estimated)" in html
    assert "NVIDIA A100-SXM4-80GB" in html and "torch 2.4.1" in html


def test_empty_sweep_says_so(study, tmp_path):
    out = tmp_path / "empty.html"
    assert wattsweep(study, "report", "nothing-yet", "-f", "html", "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert "has no measurements yet (0 of 3 runs done)" in html and "<svg" not in html
    assert "no measurements stored for this sweep yet" in wattsweep(study, "report", "nothing-yet").output


def test_bad_input(study, tmp_path):
    result = wattsweep(study, "report", "studdy", "-f", "html")
    assert result.exit_code == 2 and "no sweep 'studdy'" in result.output and "study" in result.output
    assert wattsweep(study, "report", "study", "-f", "pdf").exit_code == 2
    result = wattsweep(study, "report", "study", "-f", "html", "--training-energy", "bloomz=lots")
    assert result.exit_code == 2 and "MODEL=KWH" in result.output


@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_html_report_in_headless_chromium(study, tmp_path):
    from PIL import Image

    out = tmp_path / "report.html"
    assert wattsweep(study, "report", "study", "-f", "html", "-o", str(out)).exit_code == 0
    page = visit(out)
    assert page.title == "wattsweep report: study"
    assert page.console_errors == []
    assert page.requests == [out.resolve().as_uri()]  # the page itself, nothing else
    image = Image.open(io.BytesIO(page.screenshot_png)).convert("RGB")
    assert len(page.boxes) == 5
    for box in page.boxes:
        assert box["width"] > 300 and box["height"] > 80
        area = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
                           int(box["y"] + box["height"])))
        colors = area.getcolors(maxcolors=1 << 20)
        non_white = sum(n for n, rgb in colors if min(rgb) < 235)
        saturated = sum(n for n, (r, g, b) in colors if max(r, g, b) - min(r, g, b) > 80)  # the model points
        assert non_white > 0.005 * area.width * area.height, box
        assert saturated > 20, box  # at least one whole point (a disc of radius 5 px)


def test_json_and_csv_carry_per_cell_confidence_intervals(study):
    from scipy.stats import t

    document = json.loads(wattsweep(study, "report", "study", "-f", "json").output)
    assert document["energy"]["accounting"] == "headline" and document["energy"]["node_wide_runs"] == 7
    assert "node-wide readings" in document["energy"]["note"]  # the seeded windows have no attributed share
    cell = next(c for c in document["cells"] if c["model"] == "hub:distilbert-base-uncased")
    values = [0.002, 0.0022]
    half = float(t.ppf(0.975, 1)) * statistics.stdev(values) / math.sqrt(2)
    assert (cell["runs"], cell["dataset"]) == (2, "builtin:texts")
    assert cell["kwh_per_1k_mean"] == pytest.approx(0.0021) and cell["kwh_per_1k_std"] == pytest.approx(
        statistics.stdev(values))
    assert (cell["kwh_per_1k_ci95_low"], cell["kwh_per_1k_ci95_high"]) == (
        pytest.approx(0.0021 - half), pytest.approx(0.0021 + half))
    assert cell["kwh_per_1k_cv"] == pytest.approx(statistics.stdev(values) / 0.0021)
    rows = list(csv.DictReader(io.StringIO(wattsweep(study, "report", "study", "-f", "csv", "--level", "cell")
                                           .output)))
    assert len(rows) == 4 and {"kwh_per_1k_ci95_low", "kwh_per_1k_cv", "runs", "kwh_per_1k_std"} <= set(rows[0])
    row = next(r for r in rows if r["model"] == "hub:distilbert-base-uncased")
    assert float(row["kwh_per_1k_ci95_high"]) == pytest.approx(0.0021 + half)
    models = list(csv.DictReader(io.StringIO(wattsweep(study, "report", "study", "-f", "csv", "--level", "model")
                                             .output)))
    assert len(models) == 4 and "kwh_per_1k_std_pooled" in models[0]
    result = wattsweep(study, "report", "study", "-f", "json", "--level", "cell")
    assert result.exit_code == 2 and "only with --format csv" in result.output


def test_study_accounting_reads_the_node_wide_readings(study):
    with session_factory(study).begin() as session:  # distilbert's windows were attributed half their CPU and RAM
        session.execute(text("UPDATE measurements SET cpu_energy_attributed_kwh = cpu_energy_kwh / 2, "
                             "ram_energy_attributed_kwh = ram_energy_kwh / 2 WHERE job_id IN "
                             "(SELECT id FROM jobs WHERE model = 'hub:distilbert-base-uncased')"))
    document = json.loads(wattsweep(study, "report", "study", "--accounting", "study", "-f", "json").output)
    assert document["accounting"] == "study" and "all eight GPUs" in document["differences"][0]
    tc = next(t for t in document["tasks"] if t["task"] == "text-classification")
    node_means = [0.0021, 0.0872, 0.073]  # the node-wide readings, as seeded
    assert tc["kwh_per_1k_model_mean"] == pytest.approx(statistics.mean(node_means))
    assert tc["kwh_per_1k_model_std"] == pytest.approx(statistics.stdev(node_means))
    headline = [0.0021 * 0.85, 0.0872, 0.073]  # GPU 0.7 + (CPU 0.2 + RAM 0.1) / 2 for distilbert
    assert tc["headline_kwh_per_1k_model_mean"] == pytest.approx(statistics.mean(headline))
    assert (tc["study_table2_mean"], tc["study_table2_std"]) == (0.002, 0.001)
    distilbert = next(m for m in document["models"] if m["model"] == "hub:distilbert-base-uncased")
    assert distilbert["kwh_per_1k_mean"] == pytest.approx(0.0021)
    assert distilbert["headline_kwh_per_1k_mean"] == pytest.approx(0.0021 * 0.85)
    rows = list(csv.DictReader(io.StringIO(wattsweep(study, "report", "study", "--accounting", "study", "-f",
                                                     "csv").output)))
    assert [r["task"] for r in rows] == ["text-classification", "text-to-image"]
    table = wattsweep(study, "report", "study", "--accounting", "study").output
    assert "the study's way" in table and "text-to-image" in table and "2.91" in table
    result = wattsweep(study, "report", "study", "--accounting", "study", "-f", "html")
    assert result.exit_code == 2 and "table, csv or json" in result.output
    assert wattsweep(study, "report", "study", "--accounting", "paper").exit_code == 2
