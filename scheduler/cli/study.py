"""Study commands: `plan` (what a sweep will cost) and `pull` (fetch its models and datasets into the cache).

`plan` imports no GPU stack and no Hub client (it must answer in well under two
seconds on a login node); `pull` imports huggingface_hub and datasets inside the
command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scheduler.cli.options import DatabaseOpt, SweepFile, console, errors, load_spec, masked, settings_for

app = typer.Typer()


def _estimates(database_url: str | None, hardware_class: str) -> tuple[dict, str | None]:
    """Earlier measurements on this hardware class, and why there are none if the database cannot say."""
    url = settings_for(database_url).database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and "?" not in url \
            and not Path(url.removeprefix("sqlite:///")).exists():  # the common first plan: no SQLAlchemy import
        return {}, f"no database at {masked(url)} yet"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        parsed = make_url(url)
    except Exception:
        return {}, f"database URL {url!r} not understood"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        return {}, f"no database at {masked(url)} yet"
    from db.results.estimates import earlier_estimates
    from db.session import session_factory

    try:
        with session_factory(url)() as session:
            return earlier_estimates(session, hardware_class=hardware_class), None
    except SQLAlchemyError as error:
        reason = "schema older than this wattsweep: run `wattsweep db upgrade`" if "no such" in str(error) or \
            "does not exist" in str(error) else type(error).__name__
        return {}, f"could not read {masked(url)} ({reason})"


def _figure(values: list[float | None], digits: int = 3) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "unknown"
    text = f"{sum(known):.{digits}g}"
    return text if len(known) == len(values) else f"{text} + ? ({len(values) - len(known)} unknown)"


@app.command()
def plan(
    sweep_file: SweepFile,
    database_url: DatabaseOpt = None,
    hardware_class: Annotated[str | None, typer.Option(help="Plan for this hardware class instead of the file's.")]
    = None,
    jobs: Annotated[bool, typer.Option("--jobs", help="List every job with its estimate.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Expected makespan, its lower bound and "
                                                "model loads with N GPUs (split into workers of the group sizes "
                                                "the jobs need).")] = None,
) -> None:
    """Jobs, runs, queries, models and datasets to download, and GPU-hours and kWh from earlier runs."""
    from rich.table import Table

    from scheduler.plan.workers import make_plan

    spec = load_spec(sweep_file)
    target = hardware_class or spec.hardware_class
    estimates, problem = _estimates(database_url, target)
    result = make_plan(spec, hardware_class=target, estimates=estimates)

    table = Table(title=f"sweep {result.name} on {result.hardware_class}")
    for header in ("task", "model kind", "jobs", "runs", "queries", "warm-up", "GPU-h", "kWh"):
        table.add_column(header, justify="left" if header in ("task", "model kind") else "right")
    groups: dict[tuple[str, str], list] = {}
    for job in result.jobs:
        groups.setdefault((job.task, job.model_kind), []).append(job)
    for (task, kind), members in groups.items():
        table.add_row(task, kind, str(len(members)), f"{sum(j.runs for j in members):,}",
                      f"{sum(j.queries for j in members):,}", f"{sum(j.warmup_queries for j in members):,}",
                      _figure([j.gpu_hours for j in members]), _figure([j.kwh for j in members]))
    table.add_row("total", "", str(len(result.jobs)), f"{result.runs:,}", f"{result.queries:,}",
                  f"{result.warmup_queries:,}", _figure([j.gpu_hours for j in result.jobs]),
                  _figure([j.kwh for j in result.jobs]), style="bold")
    console.print(table)
    for task, axes in result.axes.items():  # each combination of a task's axes is one job per model
        combinations = 1
        for count in axes.values():
            combinations *= count
        console.print(f"axes of {task}: {' x '.join(f'{name} ({n})' for name, n in axes.items())} = "
                      f"{combinations} combinations per model", highlight=False)
    _print_gpus(result, spec)
    if jobs:
        for job in result.jobs:
            hours = "unknown" if job.hours is None else f"{job.gpu_hours:.3g} GPU-h, {job.kwh:.3g} kWh"
            cell = f" [{job.cell_key}]" if job.cell_key else ""
            console.print(f"  {job.task} / {job.model}{cell} ({job.model_kind}): {job.runs} runs, "
                          f"{job.gpus} GPU{'s' if job.gpus > 1 else ''}, {hours}", highlight=False)
    if workers:
        _print_schedule(spec, target, estimates, workers)
    if problem:
        console.print(f"estimates: unknown for all {len(result.jobs)} jobs: {problem}", highlight=False)
    else:
        unknown = len(result.jobs) - len(result.known)
        console.print(f"estimates: {len(result.known)} of {len(result.jobs)} jobs from earlier runs of the same task, "
                      f"model and hardware class in {masked(settings_for(database_url).database_url)}"
                      + (f"; no earlier runs for the other {unknown}" if unknown else ""), highlight=False)
    if not result.models_to_download and not result.datasets_to_download:
        console.print("nothing to download: no hub: models and no hf: datasets from the Hub")
        return
    console.print(f"to download ({len(result.models_to_download)} models, {len(result.datasets_to_download)} "
                  "datasets; `wattsweep pull FILE` on a node with Hub access):", highlight=False)
    for ref in result.models_to_download:
        console.print(f"  {ref}", highlight=False)
    for dataset in result.datasets_to_download:
        console.print(f"  {dataset.ref} (first {dataset.rows:,} rows)", highlight=False)


def _print_gpus(result, spec) -> None:
    """Which jobs need a group of GPUs, and the queue their workers take them from."""
    from worker.contract.celery_app import job_queue

    sizes: dict[int, list] = {}
    for job in result.jobs:
        sizes.setdefault(job.gpus, []).append(job)
    if set(sizes) <= {1}:
        return
    auto = sorted(ref for ref, gpus in spec.model_gpus.items() if gpus == "auto")
    console.print("GPUs per job: " + "; ".join(
        f"{len(members)} job(s) need {size} GPU{'s' if size > 1 else ''} "
        f"(queue {job_queue(result.hardware_class, size)}"
        f"{'' if size == 1 else ', workers started with --gpus holding ' + str(size)})"
        for size, members in sorted(sizes.items()))
        + (f"; auto from the weights' size, {spec.gpu_memory_gb:g} GB per GPU less {spec.gpu_memory_headroom:.0%} "
           f"headroom: {', '.join(auto)}" if auto else ""), highlight=False)


def _print_schedule(spec, hardware_class: str, estimates: dict, workers: int) -> None:
    from scheduler.plan.durations import duration
    from scheduler.plan.workers import make_schedule

    s = make_schedule(spec, workers=workers, hardware_class=hardware_class, estimates=estimates)
    pools = " + ".join(f"{n} worker{'s' if n > 1 else ''} of {size} GPU{'s' if size > 1 else ''}"
                       for size, n in sorted(s.pools.items()) if n)
    console.print(
        f"with {workers} GPUs ({pools}): expected makespan {duration(s.makespan_s)} "
        f"({s.makespan_s / 3600:.3g} h, simulated: db.queue.policy over the units, long ones split as the queue "
        f"drains), lower bound {duration(s.lower_bound_s)} = total {s.total_s / 3600:.4g} GPU-h / {workers} GPUs "
        f"(the longest unit as submitted, {duration(s.longest_unit_s)}, bounds nothing: claims split it), ratio "
        f"{s.makespan_s / s.lower_bound_s if s.lower_bound_s else 1:.3f}; {s.model_loads} model loads; "
        f"{s.units:,} units ({s.sharded_runs:,} runs in shards); durations: {s.jobs_measured} jobs from earlier "
        f"measurements, {s.jobs_prior} from the prior (parameter count, task, queries: a guess, not a measurement)",
        highlight=False)


@app.command()
def pull(sweep_file: SweepFile) -> None:
    """Download every Hub model and the rows of every hf: dataset a sweep needs into the Hugging Face cache.

    Run once on a node with Hub access (HF_HOME on the shared disk, HF_TOKEN for gated models); workers
    then run with HF_HUB_OFFLINE=1. With HF_HUB_OFFLINE=1 it only reports what the cache lacks.
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from scheduler.plan.workers import make_plan
    from worker.contract.refs import parse_model_ref
    from worker.data.hf_snapshots import pull_dataset
    from worker.models.hub import pull_model

    spec = load_spec(sweep_file, size_models=False)  # `auto` sizes models from the copies this fetches
    result = make_plan(spec, gpus={})
    items = [("model", ref, None) for ref in result.models_to_download] + \
            [("dataset", d.ref, d.rows) for d in result.datasets_to_download]
    if not items:
        console.print("nothing to pull: the sweep has no hub: models and no hf: datasets")
        return
    _quiet_hub_bars()
    outcomes = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console) as progress:
        overall = progress.add_task("pulling", total=len(items))
        for number, (kind, ref, rows) in enumerate(items, start=1):
            progress.update(overall, description=f"[{number}/{len(items)}] {kind} {ref}")
            if kind == "model":
                model = parse_model_ref(ref)
                files = progress.add_task("  files", total=None)

                def on_bytes(done: int, total: int, files=files) -> None:
                    progress.update(files, completed=done, total=total or None,
                                    description=f"  {done / 1e9:.2f} of {total / 1e9:.2f} GB")

                outcome = pull_model(model.name, model.revision, on_bytes)
                progress.remove_task(files)
            else:
                outcome = pull_dataset(ref, rows)
            outcomes.append(outcome)
            progress.advance(overall)
        progress.update(overall, description=f"pulled {len(items)} items")
    for outcome in outcomes:
        colour = "green" if outcome.ok else "red"
        console.print(f"[{colour}]{outcome.status:>10}[/{colour}] {outcome.ref}: {outcome.detail}", highlight=False,
                      soft_wrap=True)
    missing = [o for o in outcomes if not o.ok]
    if missing:
        errors.print(f"[red]error:[/red] {len(missing)} of {len(outcomes)} not pulled: "
                     f"{', '.join(o.ref for o in missing)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"all {len(outcomes)} in the cache: workers can run this sweep with HF_HUB_OFFLINE=1")


def _quiet_hub_bars() -> None:
    """Our bar only: huggingface_hub's and datasets' own per-file bars would interleave with it."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
