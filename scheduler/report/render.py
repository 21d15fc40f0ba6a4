"""`wattsweep report --format csv|json|html`: render a ReportData (the table format lives in scheduler.report.table)."""

from __future__ import annotations

import csv
import io
import operator
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

import orjson

from db.results.views import VIEW_COLUMNS
from scheduler.report.data import ReportData

FORMATS = ("table", "csv", "json", "html")
# `--level` of the CSV report: which view's rows, one per task, per model (sweep-axis cell) or per (model, dataset).
LEVELS = {"task": "v_task_summary", "model": "v_model_summary", "cell": "v_cell_summary"}


def to_csv(data: ReportData, level: str = "task") -> str:
    """Every column of the level's view, one row per task (default), model or cell (with its 95% CI)."""
    return csv_rows({"task": data.tasks, "model": data.models, "cell": data.cells}[level], level)


def csv_rows(rows: list[dict[str, Any]], level: str) -> str:
    """The CSV of the level's view's rows (`wattsweep report --format csv` reads only those: see read_level)."""
    buffer = io.StringIO()
    fieldnames = list(VIEW_COLUMNS[LEVELS[level]])
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fieldnames)
    # each row has every column of its view (db.results.views._query): picked in order by one C call a row, not
    # DictWriter's check and lookup per field (half the time of a 10,000-model CSV)
    writer.writerows(map(operator.itemgetter(*fieldnames), rows))
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_json(data: ReportData) -> str:
    document = {
        "sweep": data.sweep, "energy": data.energy, "progress": data.progress, "tasks": data.tasks,
        "models": data.models, "cells": data.cells,
        "model_kinds": data.model_kinds, "kind_comparison": data.kind_comparison, "equivalents": data.equivalents,
        "ratings": data.ratings, "rating": data.rating, "pareto": data.pareto, "batch_curves": data.batch_curves,
        "serving": data.serving, "power_limits": data.power_limits,
        "break_even": data.break_even, "provenance": data.provenance,
        "workers": data.workers, "options": asdict(data.options), "generated_at": data.generated_at,
    }
    return _dumps(document) + "\n"


# orjson (its own C encoder: a 10,000-model sweep's 28 MB in about a tenth of the standard library's time), told to
# hand datetimes and dataclasses to _plain as json.dumps(default=_plain) did, and to write non-string keys as json did
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _dumps(document: dict[str, Any]) -> str:
    """`document` indented, except that each row of a list of rows (tasks, models, cells, ...) is one compact line:
    indenting every field of 30,000 rows would double the file, and a row per line is what people grep.
    Floats are spelled the shortest way that reads back the same (orjson: 1e-05 is 1e-5); NaN, which is no JSON,
    is written null."""
    def encode(value: Any, option: int = 0) -> str:
        return orjson.dumps(value, default=_plain, option=_ORJSON | option).decode()

    def rows(value: list) -> str:
        dumps = orjson.dumps
        lines = b",\n    ".join([dumps(row, default=_plain, option=_ORJSON) for row in value])  # decoded once
        return f"[\n    {lines.decode()}\n  ]"

    parts = [f"  {encode(key)}: " + (rows(value) if isinstance(value, list) and value
                                     and all(isinstance(row, dict) for row in value)
                                     else encode(value, orjson.OPT_INDENT_2).replace("\n", "\n  "))
             for key, value in document.items()]
    return "{\n" + ",\n".join(parts) + "\n}"


def to_html(data: ReportData) -> str:
    from scheduler.report.html import render

    return render(data)


def render(data: ReportData, fmt: str, level: str = "task") -> str:
    if fmt == "csv":
        return to_csv(data, level)
    return {"json": to_json, "html": to_html}[fmt](data)
