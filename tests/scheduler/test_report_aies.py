"""The report's AI Energy Score and ML.ENERGY parts: stars, energy vs batch size, energy vs p95 latency with the
Pareto front (in headless Chromium, as the rest of the report), and the same data in JSON and the table."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from db.session import session_factory
from scheduler.cli import app
from tests.results_data import SeedModel, seed_sweep
from tests.scheduler.browser import chromium_path, visit

runner = CliRunner()


def wattsweep(url: str, *args: str):
    return runner.invoke(app, [*args, "--database-url", url], catch_exceptions=False)


@pytest.fixture
def batched(sqlite_url):
    """Two models at batch sizes 1, 8 and 64: energy per query falls with batch size, p95 latency rises."""
    cells = []
    for model, scale in (("hub:small", 1.0), ("hub:large", 4.0)):
        for batch, energy, p95 in ((1, 0.010, 0.02), (8, 0.004, 0.09), (64, 0.0015, 0.60)):
            cells.append(SeedModel("text-classification", model, [scale * energy, scale * energy * 1.02],
                                   batch_size=batch, cell_key=f"batch_size={batch}", latency_p95_s=p95 * scale,
                                   num_parameters=int(scale * 1e8)))
    with session_factory(sqlite_url).begin() as session:
        seed_sweep(session, name="batched", models=cells)
        seed_sweep(session, name="reference", hardware_class="a100", worker_id="gpu1@node2", models=[
            SeedModel("text-classification", "hub:ref-cheap", [0.001]),
            SeedModel("text-classification", "hub:ref-costly", [0.1])])
    return sqlite_url


def test_json_carries_stars_pareto_front_and_batch_curves(batched):
    result = wattsweep(batched, "report", "batched", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["rating"]["energy"] == "gpu" and doc["rating"]["reference"] == "this sweep (batched)"
    stars = {(r["model"], r["cell_key"]): r["stars"] for r in doc["ratings"]}
    assert stars[("hub:small", "batch_size=64")] == 5 and stars[("hub:large", "batch_size=1")] == 1
    [front] = doc["pareto"]
    # small at every batch size beats large at the same one on both axes; large never makes the front
    assert front["front"] == ["hub:small [batch_size=1]", "hub:small [batch_size=8]", "hub:small [batch_size=64]"]
    curves = {c["model"]: [p["batch_size"] for p in c["points"]] for c in doc["batch_curves"]}
    assert curves == {"hub:small": [1, 8, 64], "hub:large": [1, 8, 64]}
    cell = next(m for m in doc["models"] if m["model"] == "hub:small" and m["batch_size"] == 8)
    assert cell["latency_p95_s_mean"] == pytest.approx(0.09) and cell["gpu_kwh_per_1k_mean"] == pytest.approx(
        0.7 * 0.004 * 1.01)


def test_rate_against_another_sweep_and_by_headline_energy(batched):
    result = wattsweep(batched, "report", "batched", "-f", "json", "--rate-against", "reference",
                       "--rating-energy", "headline")
    doc = json.loads(result.output)
    assert doc["rating"]["reference"].startswith("sweep reference") and doc["rating"]["energy"] == "headline"
    # reference range 0.001..0.1, width 0.0198: 0.0404 (large, batch 1) -> (0.0404 - 0.001) / 0.0198 = 1.99: 4 stars
    stars = {(r["model"], r["cell_key"]): r["stars"] for r in doc["ratings"]}
    assert stars[("hub:large", "batch_size=1")] == 4 and stars[("hub:small", "batch_size=64")] == 5
    table = wattsweep(batched, "report", "batched", "--rate-against", "reference")
    assert "AI Energy Score rating: GPU energy only" in table.output and "★★★★★" in table.output
    assert wattsweep(batched, "report", "batched", "--rate-against", "nope").exit_code == 2
    assert wattsweep(batched, "report", "batched", "--rating-energy", "cpu").exit_code == 2


@pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_new_charts_appear_in_headless_chromium(batched, tmp_path):
    from PIL import Image

    out = tmp_path / "report.html"
    assert wattsweep(batched, "report", "batched", "-f", "html", "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert "<title>Energy vs batch size</title>" in html and "Energy vs p95 latency" in html
    assert html.count('class="front"') == 3 and html.count("<polyline") >= 3  # two model lines + the front
    assert 'class="stars"' in html
    page = visit(out)
    assert page.console_errors == [] and page.requests == [out.resolve().as_uri()]
    image = Image.open(io.BytesIO(page.screenshot_png)).convert("RGB")
    # per task, its models, energy vs size, and the two new ones: energy vs batch size, energy vs p95 latency
    assert len(page.boxes) == 5
    for box in page.boxes:
        assert box["width"] > 300 and box["height"] > 80
        area = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
        saturated = sum(n for n, (r, g, b) in area.getcolors(maxcolors=1 << 20) if max(r, g, b) - min(r, g, b) > 80)
        assert saturated > 20, box


def test_a_model_name_with_markup_comes_out_as_text(sqlite_url, tmp_path):
    """Jinja2 autoescapes every text: a hostile model name or cell key is shown, never run."""
    script, key = "hub:<script>alert(1)</script>", "batch_size=<u>1</u>"
    with session_factory(sqlite_url).begin() as session:
        seed_sweep(session, name="<em>names</em>", models=[
            SeedModel("text-classification", script, [0.010], batch_size=1, cell_key=key, latency_p95_s=0.02),
            SeedModel("text-classification", script, [0.004], batch_size=8, cell_key="batch_size=8",
                      latency_p95_s=0.09, kind="multi-purpose", num_parameters=10**8),
            SeedModel("text-classification", "hub:plain", [0.002])])
    out = tmp_path / "report.html"
    assert wattsweep(sqlite_url, "report", "<em>names</em>", "-f", "html", "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert "<script" not in html and "<em>" not in html and "<u>" not in html
    assert "<title>wattsweep report: &lt;em&gt;names&lt;/em&gt;</title>" in html
    shown = "hub:&lt;script&gt;alert(1)&lt;/script&gt;"
    sections = dict(part.split("</h2>", 1) for part in html.split("<h2>")[1:])
    for heading in ("Stars (AI Energy Score rule)", "Energy and batch size", "Energy and latency", "All models",
                    "Repetitions per model and dataset", "Energy per task", "Models within each task"):
        assert shown in sections[heading], heading
    assert "<code>batch_size=&lt;u&gt;1&lt;/u&gt;</code>" in sections["Stars (AI Energy Score rule)"]
