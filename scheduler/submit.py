"""Writing a sweep: validate, expand, store every job and run in one transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db.models import Sweep
from db.sweeps import NewJob, insert_sweep
from scheduler.expand import expand
from scheduler.spec import SweepSpec


def create_sweep(
    session: Session, spec: SweepSpec, *, mode: str, hardware_class: str | None = None, max_attempts: int = 3
) -> Sweep:
    # A run's fields are flat: vars() rather than asdict(), whose deep copy costs seconds at 100,000 runs.
    jobs = [
        NewJob(job.task, job.model, job.hardware_class, job.params, [dict(vars(run)) for run in job.runs],
               model_kind=job.model_kind, axes=job.axes, cell_key=job.cell_key)
        for job in expand(spec, hardware_class)
    ]
    return insert_sweep(
        session,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        hardware_class=hardware_class or spec.hardware_class,
        mode=mode,
        carbon=spec.carbon.model_dump(),
        jobs=jobs,
        max_attempts=max_attempts,
        exclusive=spec.exclusive,
    )
