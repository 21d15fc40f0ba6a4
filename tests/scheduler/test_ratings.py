"""AI Energy Score's star rule against a hand-computed example, size classes included; the Pareto front."""

from __future__ import annotations

import pytest

from scheduler.report.ratings import pareto_front, rate, stars
from scheduler.report.size_classes import footprint_gb, size_class


def row(task, model, gpu, total=None, params=None, cell=""):
    return {"task": task, "model": model, "gpu_kwh_per_1k_mean": gpu, "kwh_per_1k_mean": total or 2 * gpu,
            "num_parameters": params, "cell_key": cell}


def test_five_equal_bands_between_min_and_max_lowest_is_five_stars():
    # range 1..11, width 2: [1,3) 5, [3,5) 4, [5,7) 3, [7,9) 2, [9,11] 1
    assert [stars(v, 1, 11) for v in (1, 2.99, 3, 4.5, 5, 6.9, 7, 8.99, 9, 11)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert stars(0.5, 1, 11) == 5 and stars(20, 1, 11) == 1  # outside the reference range: clipped
    assert stars(3, 3, 3) == 5  # one model, or all equal


def test_hand_computed_example_with_text_generation_size_classes():
    models = [
        row("text-classification", "a", 0.010), row("text-classification", "b", 0.020),
        row("text-classification", "c", 0.050), row("text-classification", "d", 0.100),
        # class A (<= 20B): 1.0 .. 6.0, width 1.0; class B (<= 66B): 10 .. 20, width 2; class C alone
        row("text-generation", "small-1", 1.0, params=1_000_000_000),
        row("text-generation", "small-2", 3.5, params=7_000_000_000),
        row("text-generation", "small-3", 6.0, params=20_000_000_000),
        row("text-generation", "mid-1", 10.0, params=20_000_000_001),
        row("text-generation", "mid-2", 17.0, params=66_000_000_000),
        row("text-generation", "mid-3", 20.0, params=40_000_000_000),
        row("text-generation", "big", 90.0, params=120_000_000_000),
        row("text-generation", "unknown-size", 2.0, params=None),
    ]
    got = {(r.task, r.model): (r.size_class, r.stars) for r in rate(models, models)}
    # text-classification: range 0.01..0.1, width 0.018: 0.02 -> band 0 (0.01 + 0.018 = 0.028 > 0.02),
    # 0.05 -> (0.05 - 0.01) / 0.018 = 2.22 -> band 2 -> 3 stars
    assert got[("text-classification", "a")] == ("", 5)
    assert got[("text-classification", "b")] == ("", 5)
    assert got[("text-classification", "c")] == ("", 3)
    assert got[("text-classification", "d")] == ("", 1)
    assert got[("text-generation", "small-1")] == ("A", 5)
    assert got[("text-generation", "small-2")] == ("A", 3)  # (3.5 - 1) / 1 = 2.5 -> band 2
    assert got[("text-generation", "small-3")] == ("A", 1)
    assert got[("text-generation", "mid-1")] == ("B", 5)
    assert got[("text-generation", "mid-2")] == ("B", 2)  # (17 - 10) / 2 = 3.5 -> band 3
    assert got[("text-generation", "mid-3")] == ("B", 1)
    assert got[("text-generation", "big")] == ("C", 5)  # alone in its class
    assert got[("text-generation", "unknown-size")] == (None, None)  # a classed task needs the size


def test_energy_basis_and_reference_set_are_choices():
    reference = [row("fill-mask", "r1", 0.01, total=0.05), row("fill-mask", "r2", 0.06, total=0.06)]
    mine = [row("fill-mask", "new", 0.015, total=0.0595)]
    [by_gpu] = rate(mine, reference, energy="gpu", reference_name="past-sweep")
    [by_total] = rate(mine, reference, energy="headline", reference_name="past-sweep")
    assert (by_gpu.stars, by_gpu.band_low_kwh_per_1k, by_gpu.band_high_kwh_per_1k) == (5, 0.01, 0.06)
    assert by_total.stars == 1  # (0.0595 - 0.05) / 0.002 = 4.75 -> band 4
    assert by_gpu.as_dict()["energy_label"].startswith("GPU energy only")
    assert by_gpu.reference == "past-sweep" and by_gpu.as_dict()["wh_per_1k"] == pytest.approx(15.0)


def test_size_classes_follow_the_published_table():
    # index.md Table 2 by memory footprint: 1.2 GB per billion FP16 parameters; A <= 24 GB, B <= 80 GB, C more
    assert [size_class("reasoning", n) for n in (20e9, 20e9 + 1e6, 66e9, 66.7e9)] == ["A", "B", "B", "C"]
    assert size_class("image-classification", None) == ""


def test_size_classes_are_memory_footprints_and_ai_energy_scores_own_data_wins():
    assert footprint_gb(10_000_000_000) == pytest.approx(12.0)  # (10 x 2 / (32 / 16)) x 1.2
    assert footprint_gb(10_000_000_000, "float32") == pytest.approx(24.0)
    assert size_class("text-generation", 15_000_000_000, dtype="float32") == "B"  # 36 GB in FP32
    # granite-4.0-h-small: 32B parameters, 38 GB by the formula (B), but class C in oct_2025_models.csv
    assert size_class("text-generation", 32_200_000_000) == "B"
    assert size_class("text-generation", 32_200_000_000, "hub:ibm-granite/granite-4.0-h-small") == "C"
    assert size_class("reasoning", None, "hub:ibm-granite/granite-4.0-h-small@abc") == "C"


def test_pareto_front_keeps_points_no_other_beats_on_both():
    points = [(1.0, 9.0, "fast-costly"), (2.0, 4.0, "mid"), (3.0, 5.0, "dominated"), (4.0, 1.0, "slow-cheap"),
              (4.0, 2.0, "dominated-too")]
    assert pareto_front(points) == ["fast-costly", "mid", "slow-cheap"]
