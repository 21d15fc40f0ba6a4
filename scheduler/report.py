"""`wattsweep report --format csv|json|html`: render a ReportData (the table format lives in scheduler.report_table)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from db.views import VIEW_COLUMNS
from scheduler.report_data import ReportData

FORMATS = ("table", "csv", "json", "html")


def to_csv(data: ReportData) -> str:
    """The per-task summary (every column of v_task_summary), one row per task."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(VIEW_COLUMNS["v_task_summary"]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(data.tasks)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def to_json(data: ReportData) -> str:
    document = {
        "sweep": data.sweep, "progress": data.progress, "tasks": data.tasks, "models": data.models,
        "model_kinds": data.model_kinds, "kind_comparison": data.kind_comparison, "equivalents": data.equivalents,
        "ratings": data.ratings, "rating": data.rating, "pareto": data.pareto, "batch_curves": data.batch_curves,
        "break_even": data.break_even, "provenance": data.provenance,
        "workers": data.workers, "options": asdict(data.options), "generated_at": data.generated_at,
    }
    return json.dumps(document, default=_plain, indent=2) + "\n"


def to_html(data: ReportData) -> str:
    from scheduler.report_html import render

    return render(data)


def render(data: ReportData, fmt: str) -> str:
    return {"csv": to_csv, "json": to_json, "html": to_html}[fmt](data)
