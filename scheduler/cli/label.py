"""`wattsweep label SWEEP --model M --task T`: an SVG and a PNG energy label for one model on one task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.options import (
    DatabaseOpt,
    console,
    fail,
    find_sweep_or_fail,
    open_sessions,
    reference_or_fail,
    safe_name,
)

app = typer.Typer()


@app.command()
def label(
    sweep: Annotated[str, typer.Argument(help="Sweep id or name.")],
    model: Annotated[str, typer.Option("--model", help="The model as in the sweep file, e.g. hub:org/name.")],
    task: Annotated[str, typer.Option("--task", help="The task, e.g. text-classification.")],
    cell: Annotated[str | None, typer.Option("--cell", help="The cell, where the model has several "
                                                            "(e.g. 'batch_size=8').")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File name without extension "
                                                                  "(default: <model>-<task>-label).")] = None,
    rate_against: Annotated[str | None, typer.Option(
        "--rate-against", help="Stars against this sweep's models, or an imported reference set (default: "
                         "the sweep itself).")] = None,
    rating_energy: Annotated[str, typer.Option(
        "--rating-energy", help="gpu (as AI Energy Score) or headline.")] = "gpu",
    database_url: DatabaseOpt = None,
) -> None:
    """Write <out>.svg and <out>.png: model, Wh per 1,000 queries, task, date, hardware, stars, reference set."""
    from scheduler.report.data import ReportOptions, gather
    from scheduler.report.label import LabelData, to_png, to_svg

    if rating_energy not in ("gpu", "headline"):
        fail(f"--rating-energy {rating_energy!r}: use gpu or headline")
    sessions = open_sessions(database_url)
    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
        if rate_against is not None:
            reference_or_fail(session, rate_against, rating_energy)
        data = gather(session, found, ReportOptions(rating_energy=rating_energy, rate_against=rate_against))
    measured = {(r["task"], r["model"]) for r in data.ratings}
    if (task, model) not in measured:
        models = sorted({m for t, m in measured if t == task})
        tasks = sorted({t for t, _ in measured})
        hint = (f"its models on {task}: {', '.join(models)}" if models
                else f"its tasks: {', '.join(tasks) or 'none measured yet'}")
        fail(f"--model {model} --task {task}: not measured in sweep {found.name}; {hint}")
    cells = [r for r in data.ratings if r["task"] == task and r["model"] == model]
    if cell is not None:
        cells = [r for r in cells if r["cell_key"] == cell]
    if len(cells) != 1:
        keys = ", ".join(repr(r["cell_key"]) for r in data.ratings if r["task"] == task and r["model"] == model)
        fail(f"--cell {cell!r}: {model} on {task} has the cells {keys}; name one with --cell")
    rating = cells[0]
    hardware = _hardware(data)
    when = data.progress.get("last_run_finished_at") or data.sweep["created_at"]
    label_data = LabelData(model=model, task=task, wh_per_1k=rating["wh_per_1k"], stars=rating["stars"],
                           energy_label=rating["energy_label"], date=str(when)[:10], hardware=hardware,
                           reference=rating["reference"], size_class=rating["size_class"] or None,
                           protocol=data.rating["protocol"], unrated=rating.get("unrated"))
    stem = out or Path(f"{safe_name(model.removeprefix('hub:'))}-{task}-label")
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    try:
        svg.write_text(to_svg(label_data), encoding="utf-8")
        to_png(label_data, str(png))
    except OSError as error:
        fail(f"cannot write {svg} / {png}: {error.strerror}")
    stars = f"{rating['stars']} stars" if rating["stars"] is not None else f"not rated ({rating.get('unrated')})"
    console.print(f"wrote {svg} and {png}: {model} on {task}, {rating['wh_per_1k']:.3g} Wh per 1,000 queries "
                  f"({rating['energy_label']}), {stars} against {rating['reference']}", highlight=False)


def _hardware(data) -> str:
    gpus = sorted({p["gpu_model"] for p in data.provenance if p.get("gpu_model")})
    cpus = sorted({p["cpu_model"] for p in data.provenance if p.get("cpu_model")})
    what = ", ".join(gpus) or ", ".join(cpus) or "unknown"
    return f"{what} ({data.sweep['hardware_class']})"
