"""`wattsweep import aienergyscore`: the leaderboard's per-task CSVs as a reference set, and stars against it
equal to AI Energy Score's band rule computed by hand; bad files are one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.session import session_factory
from scheduler.report.label import LabelData, layout
from scheduler.report.ratings import rate
from tests.helpers import wattsweep
from tests.results_data import SeedModel, seed_sweep

EXCERPT = Path(__file__).parent / "data" / "aienergyscore"
GPU_SHARE = 0.7  # seed_sweep's windows: GPU energy = 0.7 x the window's energy


def gpu(kwh_per_1k: float) -> list[float]:
    """The headline figure whose GPU share is `kwh_per_1k`."""
    return [kwh_per_1k / GPU_SHARE]


@pytest.fixture
def lab(tmp_path, migrated_sqlite):
    url = migrated_sqlite(tmp_path / "wattsweep.db")
    with session_factory(url).begin() as session:
        seed_sweep(session, name="lab", hardware_class="h100", models=[
            SeedModel("text-to-image", "hub:lab/diffuser", gpu(0.5)),
            SeedModel("text-generation", "hub:lab/small-7b", gpu(0.06), num_parameters=7_000_000_000),
            SeedModel("text-generation", "hub:ibm-granite/granite-4.0-h-small", gpu(0.9),
                      num_parameters=32_200_000_000)])
    return url


def test_stars_against_the_leaderboard_equal_its_band_rule_by_hand(lab, tmp_path):
    imported = wattsweep("import", "aienergyscore", str(EXCERPT / "image_generation.csv"),
                         str(EXCERPT / "text_generation.csv"), cwd=tmp_path, env_url=lab)
    assert imported.returncode == 0, imported.stderr
    assert "reference set aienergyscore: 17 model(s) on text-generation, text-to-image" in imported.stdout
    report = wattsweep("report", "lab", "--format", "json", "--rate-against", "aienergyscore", cwd=tmp_path,
                       env_url=lab)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    got = {r["model"]: (r["size_class"], r["stars"]) for r in data["ratings"]}
    # image generation: 0.186811914 .. 1.214355539 kWh/1k, width 0.205508725; (0.5 - 0.1868) / 0.2055 = 1.52
    # -> band 1 -> 4 stars
    assert got["hub:lab/diffuser"] == ("", 4)
    # text generation class A (7B: 8.4 GB): 0.01 .. 0.11, width 0.02; (0.06 - 0.01) / 0.02 = 2.5 -> 3 stars
    assert got["hub:lab/small-7b"] == ("A", 3)
    # granite-4.0-h-small: class C as AI Energy Score publishes it: 0.3 .. 2.3, width 0.4; (0.9 - 0.3) / 0.4
    # = 1.5 -> 4 stars (in class B, by its 38 GB, it would be clipped to 1 star)
    assert got["hub:ibm-granite/granite-4.0-h-small"] == ("C", 4)
    assert data["rating"]["reference"] == "AI Energy Score leaderboard (aienergyscore)"

    label = wattsweep("label", "lab", "--model", "hub:lab/diffuser", "--task", "text-to-image", "--rate-against",
                      "aienergyscore", "--out", str(tmp_path / "diffuser"), cwd=tmp_path, env_url=lab)
    assert label.returncode == 0, label.stderr
    svg = (tmp_path / "diffuser.svg").read_text()
    assert "rated against: AI Energy Score leaderboard (aienergyscore)" in svg
    assert "protocol: sweep lab&#x27;s own, not AI Energy Score&#x27;s" in svg  # which protocol it followed

    headline = wattsweep("report", "lab", "--rate-against", "aienergyscore", "--rating-energy", "headline",
                         cwd=tmp_path, env_url=lab)
    assert headline.returncode == 2 and "publishes GPU energy only" in headline.stderr


@pytest.mark.parametrize(("name", "text", "message"), [
    ("text_generation.csv", "model,energy_score\ngpt2,5\n",
     "text_generation.csv: missing column(s) total_gpu_energy; the leaderboard's per-task CSV has model, "
     "total_gpu_energy"),
    ("translation.csv", "model,total_gpu_energy\ngpt2,0.1\n",
     "translation.csv: unknown AI Energy Score task 'translation'; name the file after one of text_generation"),
    ("asr.csv", "model,total_gpu_energy\nwhisper,-1\n", "asr.csv:2: total_gpu_energy '-1': expected kWh"),
    ("text_generation.csv", "model,total_gpu_energy,class\ngpt2,0.1,D\n",
     "text_generation.csv:2: class 'D': expected A, B or C"),
])
def test_a_bad_leaderboard_file_is_one_line_and_writes_nothing(tmp_path, name, text, message):
    good = tmp_path / "image_generation.csv"
    good.write_text((EXCERPT / "image_generation.csv").read_text())
    (tmp_path / name).write_text(text)
    result = wattsweep("import", "aienergyscore", str(good), str(tmp_path / name), cwd=tmp_path,
                       env_url=f"sqlite:///{tmp_path / 'wattsweep.db'}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and "(nothing imported)" in result.stderr
    assert not (tmp_path / "wattsweep.db").exists()


def test_a_cpu_run_is_not_given_five_stars_for_zero_gpu_energy():
    """AI Energy Score rates GPU energy: where none was measured, the GPU rule has nothing to rate."""
    rows = [{"task": "fill-mask", "model": m, "cell_key": "", "gpu_kwh_per_1k_mean": 0.0, "kwh_per_1k_mean": x}
            for m, x in (("a", 0.01), ("b", 0.02))]
    by_gpu = rate(rows, rows, energy="gpu")
    assert [r.stars for r in by_gpu] == [None, None]
    assert by_gpu[0].unrated == "no GPU energy measured: rate the whole energy with --rating-energy headline"
    assert [r.stars for r in rate(rows, rows, energy="headline")] == [5, 1]  # the whole energy, said as such
    shapes = layout(LabelData("a", "fill-mask", 0.0, None, "GPU energy only (as AI Energy Score rates)",
                              "2026-12-06", "cpu", "this sweep", unrated=by_gpu[0].unrated,
                              protocol="sweep ai-energy-score-smoke"))
    texts = [shape[3] for shape in shapes if shape[0] == "text"]
    assert any(text.startswith("not rated: no GPU energy measured") for text in texts)
    assert not any("5 of 5 stars" in text for text in texts)
