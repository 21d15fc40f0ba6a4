"""`wattsweep report --accounting study`: a sweep's figures the way Power Hungry Processing computed them.

The study (Luccioni, Jernite, Strubell, FAccT 2024) took CodeCarbon's whole
"query model" window in machine tracking mode: the node's CPU packages and
RAM, every GPU CodeCarbon saw, no idle subtracted, no attribution between
processes. Per model, the mean over datasets and repetitions; per task, the
mean and standard deviation over models (its Table 2). Here the same
arithmetic runs over the stored node-wide readings (`node_*` columns of the
views), beside the headline (the window's own energy) and the study's
published Table 2. What cannot be reproduced is said in `DIFFERENCES` (and in
the README, "Comparing with Power Hungry Processing").
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy.orm import Session

from db.results.views import model_rows, task_rows

# Table 2 of the study: kWh per 1,000 queries, mean and (std) over the models of each task.
STUDY_TABLE2_KWH_PER_1K = {
    "text-classification": (0.002, 0.001), "question-answering": (0.003, 0.001), "fill-mask": (0.003, 0.001),
    "token-classification": (0.004, 0.002), "image-classification": (0.007, 0.001),
    "object-detection": (0.038, 0.02), "text-generation": (0.047, 0.03), "summarization": (0.049, 0.01),
    "image-to-text": (0.063, 0.02), "text-to-image": (2.907, 3.31),
}
ACCOUNTING = ("headline", "study")
DEFINITION = ("node-wide CodeCarbon readings of each query window (the whole host's CPU and RAM, the metered GPU), "
              "no idle subtracted, nothing attributed between co-located workers; per model the mean over its "
              "runs (datasets and repetitions), per task the mean and standard deviation over models (Table 2)")
DIFFERENCES = (
    "the study's node-wide CodeCarbon read all eight GPUs of its node; wattsweep meters the pinned GPU only",
    "RAM: CodeCarbon 3's model here, 2.x's (3 W per 8 GB of installed RAM) in the study",
    "fixed output lengths and a warm-up before each measured window here; neither in the study",
)


def study_document(session: Session, *, sweep_id: int) -> dict[str, Any]:
    """Per task and per model: the node-wide figures, the headline beside them, the study's Table 2."""
    tasks = []
    for t in sorted(task_rows(session, sweep_id=sweep_id), key=lambda r: (r["node_kwh_per_1k_model_mean"] is None,
                                                                             r["node_kwh_per_1k_model_mean"] or 0.0)):
        published = STUDY_TABLE2_KWH_PER_1K.get(t["task"], (None, None))
        node, headline = t["node_kwh_per_1k_model_mean"], t["kwh_per_1k_model_mean"]
        tasks.append({
            "task": t["task"], "models": t["models"], "runs": t["runs"],
            "kwh_per_1k_model_mean": node, "kwh_per_1k_model_std": t["node_kwh_per_1k_model_std"],
            "headline_kwh_per_1k_model_mean": headline,
            "node_over_headline": node / headline if node is not None and headline else None,
            "study_table2_mean": published[0], "study_table2_std": published[1],
            "node_wide_runs": t["node_wide_runs"],
        })
    models = [{"task": m["task"], "model": m["model"], "cell_key": m["cell_key"], "model_kind": m["model_kind"],
               "runs": m["runs"], "datasets": m["datasets"], "kwh_per_1k_mean": m["node_kwh_per_1k_mean"],
               "headline_kwh_per_1k_mean": m["kwh_per_1k_mean"], "node_wide_runs": m["node_wide_runs"]}
              for m in model_rows(session, sweep_id=sweep_id)]
    return {"accounting": "study", "definition": DEFINITION, "differences": list(DIFFERENCES), "tasks": tasks,
            "models": models}


def to_json(document: dict[str, Any], sweep: dict[str, Any]) -> str:
    return json.dumps({"sweep": sweep} | document, indent=2, default=str) + "\n"


def to_csv(document: dict[str, Any]) -> str:
    """One row per task (the study's Table 2 layout, with our headline and the published figures beside)."""
    buffer = io.StringIO()
    fields = list(document["tasks"][0]) if document["tasks"] else ["task"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(document["tasks"])
    return buffer.getvalue()


def print_study(out, document: dict[str, Any]) -> bool:
    """The terminal tables; False when nothing was measured."""
    from rich.table import Table

    if not document["tasks"]:
        out.print("no measurements stored for this sweep yet")
        return False

    def g3(value):
        return f"{value:.3g}" if value is not None else "-"

    table = Table(title="kWh per 1,000 queries the study's way (node-wide readings; mean and std over models)",
                  title_justify="left")
    for header in ("task", "models", "runs", "mean", "std", "headline mean", "node / headline", "study mean",
                   "study std"):
        table.add_column(header, justify="left" if header == "task" else "right")
    for t in document["tasks"]:
        table.add_row(t["task"], str(t["models"]), str(t["runs"]), g3(t["kwh_per_1k_model_mean"]),
                      g3(t["kwh_per_1k_model_std"]), g3(t["headline_kwh_per_1k_model_mean"]),
                      g3(t["node_over_headline"]), g3(t["study_table2_mean"]), g3(t["study_table2_std"]))
    out.print(table)
    table = Table(title="Per model: node-wide mean over its runs, headline beside it", title_justify="left")
    for header in ("task", "model", "runs", "node-wide", "headline"):
        table.add_column(header, justify="left" if header in ("task", "model") else "right")
    for m in document["models"]:
        model = f"{m['model']} [{m['cell_key']}]" if m["cell_key"] else m["model"]
        table.add_row(m["task"], model, str(m["runs"]), g3(m["kwh_per_1k_mean"]), g3(m["headline_kwh_per_1k_mean"]))
    out.print(table)
    out.print(f"[dim]study accounting: {DEFINITION}. Not reproducible here: {'; '.join(DIFFERENCES)}. "
              "study mean / std: the published Table 2.[/dim]")
    return True
