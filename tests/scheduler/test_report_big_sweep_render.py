"""What the faster rendering of a big sweep's report (10,000 models under a second, bench/scale.py) must keep:
the same JSON document (orjson, not the standard library, encodes it), the same table cells and chart texts
(escaped only where a text needs it, figures formatted on a fast path), the same page when charts and tables are
put in after Jinja rendered it (Blocks), the same star ratings (each row classed once), and the same terminal
report past its row limit (cells counted, ratings not computed to be counted)."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from html import escape as html_escape
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from rich.console import Console
from typer.testing import CliRunner

from db.queue.sweeps import find_sweep
from db.session import session_factory
from scheduler.cli import app
from scheduler.report import charts, html, table
from scheduler.report.charts import Point, Row
from scheduler.report.data import ReportOptions, batch_curves, cell_label, gather, pareto_rows
from scheduler.report.html_parts import Block, Stars, Table, WithCode, environment, fmt, render_template, table_html
from scheduler.report.ratings import pareto_front, rate
from scheduler.report.render import _dumps, _plain
from tests.scheduler.test_report import study  # noqa: F401  (the fixture: a small study-like sweep)
from tests.scheduler.test_report_tables_html import MACROS

TEXT = st.text(alphabet=st.sampled_from("ab1 .,&<>'\"–é\n\\/") | st.characters(), max_size=12)
FIGURES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e-3, 1e-3), st.floats(-1e5, 1e5))


def fmt_as_it_was(value: Any, digits: int = 3) -> str:
    """html_parts.fmt before its fast path (the reference)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


@given(FIGURES, st.sampled_from([3, 6]))
def test_fmt_fast_path_formats_as_before(value, digits):
    assert fmt(value, digits) == fmt_as_it_was(value, digits)


@given(TEXT)
def test_chart_escape_is_htmls(text):
    assert charts.escape(text) == html_escape(text)


@settings(max_examples=60)
@given(st.lists(st.lists(st.one_of(TEXT, TEXT.map(Markup), st.builds(WithCode, TEXT, st.none() | TEXT),
                                   st.builds(Stars, st.none() | st.integers(0, 5))), min_size=1, max_size=4),
                max_size=5), st.frozensets(st.integers(0, 4)))
def test_table_html_escapes_as_the_macros_did(rows, numeric):
    """Texts without markup characters are written as they are; any other is escaped as autoescape would."""
    from jinja2 import Environment, StrictUndefined

    t = Table(["a", "b <c>", "d", "e"], rows, numeric)
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    assert str(table_html(t)) == str(env.from_string(MACROS).module.table(t))


@settings(max_examples=60)
@given(st.lists(TEXT, min_size=1, max_size=4), st.booleans())
def test_chart_texts_are_escaped_as_each_alone(texts, scatter):
    """A chart searches all its labels and tooltips at once for markup characters: each text still comes out as
    html.escape writes it, whether or not the others need escaping."""
    if scatter:
        markup = "".join(charts.scatter_chart([Point(1.0 + i, "#000", t, y=2.0) for i, t in enumerate(texts)],
                                              title="t", x_label="x", y_label="y"))
    else:
        markup = "".join(charts.strip_chart([Row(t, [Point(1.0 + i, "#000", t)]) for i, t in enumerate(texts)],
                                            title="t", axis_label="x", label_width=100))
    for t in texts:
        assert f"<title>{html_escape(t)}</title>" in markup


def test_page_with_blocks_put_in_is_the_page_jinja_renders(study, monkeypatch):  # noqa: F811
    """render_template puts charts and tables (Blocks) into the page after Jinja rendered it: the same page as
    Jinja writing them in place (as it does outside render_template, where a Block is its markup)."""
    pages = []
    monkeypatch.setattr(html, "render_template", lambda name, **page: pages.append((name, page)) or "")
    with session_factory(study).begin() as session:
        html.render(gather(session, find_sweep(session, ref="study"), ReportOptions()))
    (name, page), = pages
    inline = environment().get_template(name).render(**page)
    assert render_template(name, **page) == inline
    assert inline.count("<svg") >= 4 and inline.count("<table>") >= 8 and "<!--block" not in inline
    block = table_html(page["models"])  # outside a render: its markup
    assert isinstance(block, Block) and str(block) == block.__html__() and str(block) in inline


def _report_like(models: int) -> dict[str, Any]:
    """A document shaped like a report's: lists of rows (one per model, with every kind of value a view gives),
    nested objects, and values the standard library wrote through `default`."""
    created = datetime(2026, 12, 6, 14, 11, 42, 981690, tzinfo=UTC)
    rows = [{"task": f"task-{i % 10}", "model": f"hub:org/模型-{i} \"q\" </script>", "cell_key": "",
             "runs": 10, "kwh_per_1k_mean": 0.001 * (1 + i % 7) / 3, "tiny": 1e-05 * i, "big": 1e16 + i,
             "whole": float(i), "none": None, "flag": i % 2 == 0, "at": created + timedelta(seconds=i),
             "day": date(2026, 1, 1 + i % 28), "naive": datetime(2026, 1, 1, 12, 0, i % 60)}
            for i in range(models)]
    return {"sweep": {"id": 1, "name": "big", "created_at": created, "source_files": None,
                      "training_energy_unmatched": []},
            "energy": {"runs": 10 * models, "note": None}, "tasks": rows[:10], "models": rows, "cells": [],
            "pareto": [{"task": "t", "front": ["a", "b"]}], "batch_curves": [],
            "power_limits": [{"job": 1, "limits": {7: 250.0}}], "options": {"phone_charge_kwh": 0.022},
            "generated_at": datetime(2026, 12, 6, 15, 0, tzinfo=timezone(timedelta(hours=1)))}


def test_json_is_the_standard_librarys_document_with_a_row_a_line():
    document = _report_like(1500)
    text = _dumps(document)
    assert json.loads(text) == json.loads(json.dumps(document, default=_plain))
    lines = text.splitlines()
    assert sum(line.startswith('    {"task":"task-') for line in lines) == 1500 + 10  # each row on its own line
    assert '"created_at": "2026-12-06T14:11:42.981690+00:00"' in text  # datetimes spelled by isoformat, as before
    assert '"generated_at": "2026-12-06T15:00:00+01:00"' in text


def test_json_writes_nan_as_null():
    """NaN is no JSON (the standard library wrote the bare word NaN); orjson writes null."""
    assert json.loads(_dumps({"models": [{"x": math.nan}], "y": math.inf})) == {"models": [{"x": None}], "y": None}


def test_ratings_against_the_sweep_itself_are_the_ones_against_a_copy():
    """rate() classes each row once when the reference is the models themselves: the same stars as against an
    equal reference made of other objects."""
    models = [{"task": task, "model": f"hub:org/m{i}", "cell_key": "", "num_parameters": n, "model_dtype": None,
               "gpu_kwh_per_1k_mean": e, "kwh_per_1k_mean": e}
              for i, (task, n, e) in enumerate([("text-generation", 1e9, 0.5), ("text-generation", 2e10, 2.0),
                                                ("text-generation", 7e10, 9.0), ("text-generation", None, 1.0),
                                                ("text-classification", 1e8, 0.01),
                                                ("text-classification", 2e8, 0.03),
                                                ("text-classification", None, 0.0)])]
    assert rate(models, models) == rate(models, copy.deepcopy(models))
    assert {r.stars for r in rate(models, models)} >= {5, 1, None}


def test_batch_curves_and_pareto_fronts_of_many_models():
    models = [{"task": f"t{(i // 2) % 3}", "model": f"m{i // 2}", "cell_key": f"batch_size={1 + i % 2}",
               "batch_size": 1 + i % 2, "kwh_per_1k_mean": 1.0 / (1 + i % 5), "latency_p95_s_mean": 0.1 * (i % 4),
               "throughput_queries_per_s_mean": None} for i in range(300)]
    assert len(batch_curves(models)) == 150  # each model at batch sizes 1 and 2
    one_size = [m | {"batch_size": 8, "cell_key": ""} for m in models]
    assert batch_curves(one_size) == []
    fronts = pareto_rows(models)
    assert [f["task"] for f in fronts] == ["t0", "t1", "t2"]
    assert [f["cells"] for f in fronts] == [100, 100, 100]
    for front in fronts:  # as from the task's own cells
        cells = [m for m in models if m["task"] == front["task"]]
        assert front["front"] == pareto_front((m["latency_p95_s_mean"], m["kwh_per_1k_mean"], cell_label(m))
                                              for m in cells)


def test_terminal_report_past_its_limit_counts_cells_and_ratings(study, monkeypatch):  # noqa: F811
    """Past the limit the tables say how many cells and rated cells there are (counted, not computed)."""
    def report() -> str:
        result = CliRunner().invoke(app, ["report", "study", "--database-url", study], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    full = report()
    assert "Repetitions per model and dataset" in full and "AI Energy Score rating" in full
    monkeypatch.setattr(table, "TERMINAL_ROWS", 3)
    limited = report()
    assert "4 cells (model x dataset): more than a terminal table shows (3)" in limited
    assert "4 rated cells: more than a terminal table shows (3)" in limited
    assert "Repetitions per model and dataset" not in limited and "AI Energy Score rating" not in limited


def test_print_report_with_a_count_of_cells():
    out = Console(width=200, record=True)
    tasks = [{"task": "t", "models": 2, "runs": 4, "kwh_per_1k_mean": 0.1, "kwh_per_1k_std_pooled": 0.01,
              "net_kwh_per_1k_mean": 0.05, "g_co2e_per_1k_mean": 10.0, "estimated_components": "ram",
              "node_wide_runs": 0, "excluded_runs": 0}]
    assert table.print_report(out, tasks, table.TERMINAL_ROWS + 1)
    assert f"{table.TERMINAL_ROWS + 1:,} cells (model x dataset): more than a terminal" in out.export_text()
