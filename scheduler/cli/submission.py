"""`wattsweep export SWEEP --format aienergyscore --model M`: the files an AI Energy Score submission holds."""

from __future__ import annotations

from pathlib import Path

from scheduler.cli.options import console, fail, find_sweep_or_fail, safe_name


def export_submission(sessions, sweep: str | None, model: str, task: str | None, cell: str | None,
                      out: Path | None) -> None:
    from db.results.views import run_rows
    from scheduler.report.aies_submission import SubmissionError, build_submission
    from scheduler.report.data import protocol_of

    with sessions() as session:
        found = find_sweep_or_fail(session, sweep)
        rows = [r for batch in run_rows(session, sweep_id=found.id) for r in batch if r["model"] == model]
    if not rows:
        fail(f"--model {model}: not in sweep {found.name}")
    tasks = sorted({r["task"] for r in rows})
    if task is None and len(tasks) > 1:
        fail(f"--model {model} ran {', '.join(tasks)} in sweep {found.name}; name one with --task")
    task = task or tasks[0]
    rows = [r for r in rows if r["task"] == task]
    if not rows:
        fail(f"--task {task}: {model} ran {', '.join(tasks)} in sweep {found.name}")
    cells = sorted({r["cell_key"] or "" for r in rows})
    if cell is None and len(cells) > 1:
        fail(f"{model} on {task} has the cells {', '.join(map(repr, cells))}; name one with --cell")
    cell = cells[0] if cell is None else cell
    rows = [r for r in rows if (r["cell_key"] or "") == cell]
    if not rows:
        fail(f"--cell {cell!r}: {model} on {task} has the cells {', '.join(map(repr, cells))}")
    try:
        submission = build_submission(rows, sweep=found.name, protocol=protocol_of(found))
    except SubmissionError as error:
        fail(f"{model} on {task}: {error}")
    folder = out or Path(f"{safe_name(model.removeprefix('hub:'))}-{task}-aienergyscore")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in submission.files().items():
            (folder / name).write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {folder}: {error.strerror}")
    console.print(f"wrote {folder}/benchmark_report.json and GPU_ENERGY_WH.txt: {model} on {task}, "
                  f"{submission.gpu_energy_wh:.2f} Wh GPU energy per run of "
                  f"{submission.report['summary']['successful_prompts']:,} queries (mean of "
                  f"{submission.report['wattsweep']['runs']} runs); zip the folder for AI Energy Score's "
                  "submission portal", highlight=False)
