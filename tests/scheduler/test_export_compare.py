"""`wattsweep export` (csv, parquet of v_runs) and `wattsweep compare` (per (task, model) ratio)."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from db.results.views import VIEW_COLUMNS
from db.session import session_factory
from scheduler.cli import app
from tests.results_data import SeedModel, seed_sweep

runner = CliRunner()


def wattsweep(url: str, *args: str):
    return runner.invoke(app, [*args, "--database-url", url], catch_exceptions=False)


@pytest.fixture
def two_sweeps(database_url):
    with session_factory(database_url).begin() as session:
        seed_sweep(session, name="on-a100", hardware_class="a100", models=[
            SeedModel("fill-mask", "hub:bert", [0.002, 0.002], pending_runs=1),
            SeedModel("fill-mask", "hub:roberta", [0.004]),
            SeedModel("summarization", "hub:t5", [0.05]),
        ])
        seed_sweep(session, name="on-h100", hardware_class="h100", worker_id="gpu0@node2", models=[
            SeedModel("fill-mask", "hub:bert", [0.001, 0.001]),
            SeedModel("fill-mask", "hub:roberta", [0.001]),
            SeedModel("text-generation", "hub:gpt2", [0.03]),
        ])
    return database_url


def test_export_csv_and_parquet(two_sweeps, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "runs.csv"
    result = wattsweep(two_sweeps, "export", "on-a100", "--out", str(out))
    assert result.exit_code == 0, result.output
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(VIEW_COLUMNS["v_runs"])
    assert len(rows) == 5 and sorted(r["run_status"] for r in rows) == ["done"] * 4 + ["pending"]
    assert {r["hardware_class"] for r in rows} == {"a100"}
    out = tmp_path / "runs.parquet"
    assert wattsweep(two_sweeps, "export", "on-a100", "-f", "parquet", "-o", str(out)).exit_code == 0
    table = pq.read_table(out)
    assert table.num_rows == 5 and table.schema.names == list(VIEW_COLUMNS["v_runs"])
    assert str(table.schema.field("energy_kwh").type) == "double"
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("is_outlier").type) == "bool"
    energies = sorted(e for e in table.column("energy_kwh").to_pylist() if e is not None)
    assert energies == pytest.approx([0.002, 0.002, 0.004, 0.05])
    assert wattsweep(two_sweeps, "export", "on-a100", "-f", "xlsx").exit_code == 2


def test_compare(two_sweeps):
    result = runner.invoke(app, ["compare", "on-a100", "on-h100", "-f", "json", "--database-url", two_sweeps])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    ratios = {(p["task"], p["model"]): p["ratio"] for p in document["pairs"]}
    assert ratios == {("fill-mask", "hub:bert"): pytest.approx(0.5), ("fill-mask", "hub:roberta"): pytest.approx(0.25)}
    assert (document["only_in_a"], document["only_in_b"]) == (1, 1)
    table = wattsweep(two_sweeps, "compare", "on-a100", "on-h100").output
    assert "geometric mean of B / A: 0.354" in table and "only in A: 1, only in B: 1" in table


def test_compare_without_common_models(sqlite_url):
    with session_factory(sqlite_url).begin() as session:
        seed_sweep(session, name="x", models=[SeedModel("fill-mask", "hub:bert", [0.002])])
        seed_sweep(session, name="y", models=[SeedModel("fill-mask", "hub:other", [0.002])])
    result = wattsweep(sqlite_url, "compare", "x", "y")
    assert result.exit_code == 1 and "no (task, model) was measured in both" in result.output
    result = wattsweep(sqlite_url, "compare", "x", "z")
    assert result.exit_code == 2 and "no sweep 'z'" in result.output
