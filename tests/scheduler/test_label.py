"""`wattsweep label`: an SVG and a PNG; the PNG read back pixel by pixel shows the stars the rule gives."""

from __future__ import annotations

import pytest
from PIL import Image

from db.session import session_factory
from scheduler.report.label import GOLD, GREEN, GREY, STAR_R, star_centre
from tests.helpers import wattsweep
from tests.results_data import SeedModel, seed_sweep


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def star_colours(png) -> list[str]:
    """Per star, which colour fills its centre region."""
    image = Image.open(png).convert("RGB")
    found = []
    for i in range(5):
        cx, cy = star_centre(i)
        box = [image.getpixel((int(cx + dx), int(cy + dy))) for dx in range(-6, 7) for dy in range(-6, 7)]
        gold, grey = box.count(rgb(GOLD)), box.count(rgb(GREY))
        found.append("gold" if gold > 100 else "grey" if grey > 100 else "?")
    return found


@pytest.fixture
def seeded(tmp_path, migrated_sqlite):
    url = migrated_sqlite(tmp_path / "wattsweep.db")
    with session_factory(url).begin() as session:  # GPU energy is 0.7 x these: range 0.7..7.7 Wh, width 1.4
        seed_sweep(session, name="labels", models=[
            SeedModel("fill-mask", "hub:cheap", [0.001]), SeedModel("fill-mask", "hub:middling", [0.0045]),
            SeedModel("fill-mask", "hub:costly", [0.011])])
    return url


def test_label_svg_and_png_show_model_energy_task_date_hardware_stars_reference(seeded, tmp_path):
    result = wattsweep("label", "labels", "--model", "hub:middling", "--task", "fill-mask", "--out",
                       str(tmp_path / "mid"), cwd=tmp_path, env_url=seeded)
    assert result.returncode == 0, result.stderr
    assert "3.15 Wh per 1,000 queries" in result.stdout and "4 stars" in result.stdout  # (3.15-0.7)/1.4 = 1.75: band 1
    svg = (tmp_path / "mid.svg").read_text()
    for text in ("middling", "fill-mask", "3.15", "Wh per 1,000 queries", "NVIDIA A100-SXM4-80GB (a100)",
                 "2026-11-01", "rated against: this sweep (labels)", "GPU energy only"):
        assert text in svg, text
    assert svg.count('class="star"') == 5
    png = Image.open(tmp_path / "mid.png").convert("RGB")
    assert png.size == (420, 600)
    assert png.getpixel((5, 5)) == rgb(GREEN)  # the header band
    assert star_colours(tmp_path / "mid.png") == ["gold", "gold", "gold", "gold", "grey"]
    dark = sum(1 for x in range(20, 400) for y in range(360, 384) if sum(png.getpixel((x, y))) < 150)
    assert dark > 200  # the energy figure is drawn

    cheap = wattsweep("label", "labels", "--model", "hub:cheap", "--task", "fill-mask", "--out",
                      str(tmp_path / "cheap"), cwd=tmp_path, env_url=seeded)
    assert cheap.returncode == 0 and star_colours(tmp_path / "cheap.png") == ["gold"] * 5
    assert STAR_R > 6


@pytest.mark.parametrize("args, message", [
    (["--model", "hub:nope", "--task", "fill-mask"], "not measured in sweep labels; its models on fill-mask: "
                                                      "hub:cheap, hub:costly, hub:middling"),
    (["--model", "hub:cheap", "--task", "summarization"], "its tasks: fill-mask"),
])
def test_label_for_a_model_or_task_not_in_the_sweep_is_refused(seeded, tmp_path, args, message):
    result = wattsweep("label", "labels", *args, cwd=tmp_path, env_url=seeded)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("*.svg")) == [] and list(tmp_path.glob("*.png")) == []
