"""A report reads its rows, ends its transaction, then computes and renders: a big sweep's rendering outlasted the
server's idle-in-transaction limit (1 min), which ended the connection and failed the report (issue 22)."""

from __future__ import annotations

import pytest

from db.session import get_engine
from tests.helpers import wattsweep_cli
from tests.results_data import SeedModel, seed_sweep


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_the_report_holds_no_connection_while_it_renders(sessions, database_url, monkeypatch, fmt):
    import scheduler.report.render as render_module
    import scheduler.report.table as table_module

    with sessions.begin() as session:
        seed_sweep(session, name="s", models=[SeedModel("text-classification", "hub:org/a", [0.002, 0.003]),
                                              SeedModel("text-classification", "hub:org/b", [0.02, 0.03])])
    held = []

    def watching(original):
        def call(*args, **kwargs):
            held.append(get_engine(database_url).pool.checkedout())
            return original(*args, **kwargs)
        return call

    monkeypatch.setattr(render_module, "render", watching(render_module.render))
    monkeypatch.setattr(table_module, "_table", watching(table_module._table))  # each table the terminal shows
    monkeypatch.setattr(table_module, "print_ratings", watching(table_module.print_ratings))
    result = wattsweep_cli(database_url, "report", "s", *(["--format", fmt] if fmt != "table" else []))
    assert result.exit_code == 0, result.output
    assert held and set(held) == {0}  # rendered with every connection back in the pool: no transaction open


def test_a_csv_reads_its_level_only_and_gives_the_json_reports_rows(sessions, database_url):
    import csv
    import io
    import json

    with sessions.begin() as session:
        seed_sweep(session, name="s", models=[SeedModel("text-classification", "hub:org/a", [0.002, 0.003]),
                                              SeedModel("fill-mask", "hub:org/b", [0.02, 0.03])])
    for intensity in ([], ["--grid-intensity", "500"]):
        document = json.loads(wattsweep_cli(database_url, "report", "s", "-f", "json", *intensity).output)
        for level, key in (("task", "tasks"), ("model", "models"), ("cell", "cells")):
            rows = list(csv.DictReader(io.StringIO(
                wattsweep_cli(database_url, "report", "s", "-f", "csv", "--level", level, *intensity).output)))
            assert [(r["task"], float(r["g_co2e_per_1k_mean"])) for r in rows] == \
                [(r["task"], pytest.approx(r["g_co2e_per_1k_mean"])) for r in document[key]]


def test_a_terminal_table_of_more_rows_than_a_terminal_shows_names_the_format_that_lists_them(
        sessions, database_url, monkeypatch):
    import scheduler.report.table as table_module

    monkeypatch.setattr(table_module, "TERMINAL_ROWS", 2)
    with sessions.begin() as session:
        seed_sweep(session, name="s", models=[SeedModel("text-classification", f"hub:org/m{i}", [0.002, 0.003])
                                              for i in range(3)])
    output = " ".join(wattsweep_cli(database_url, "report", "s").output.split())
    assert "3 cells (model x dataset): more than a terminal table shows (2)" in output and "--level cell" in output
    assert "3 rated cells: more than a terminal table shows (2)" in output
    assert "kWh per 1,000 queries by task" in output  # the task table is always there
