"""The power limits workers set and have not yet put back (table power_limits_set, migration 0027).

A worker writes a row before it changes a GPU's limit and stamps `restored_at` once the previous limit is back, so
that a limit outlives no worker unnoticed: a worker that starts on the host after a SIGKILL finds the rows of its
GPUs without `restored_at` and restores `previous_w` (worker.process.power_limits). Times are the database's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.clock import server_now
from db.models import PowerLimitSet


def record_set(session: Session, *, host_id: str, gpu_uuid: str, previous_w: float, set_w: float,
               worker_id: str) -> int:
    """A new limit on a GPU whose previous limit `previous_w` must go back; returns the row's id."""
    row = PowerLimitSet(host_id=host_id, gpu_uuid=gpu_uuid, previous_w=previous_w, set_w=set_w, worker_id=worker_id,
                        set_at=server_now())
    session.add(row)
    session.flush()
    return row.id


def record_change(session: Session, *, row_id: int, set_w: float) -> None:
    """Another cell's limit on a GPU already changed: the previous limit to put back stays the first one."""
    session.execute(update(PowerLimitSet).where(PowerLimitSet.id == row_id).values(set_w=set_w, set_at=server_now()))


def mark_restored(session: Session, *, row_id: int) -> None:
    session.execute(update(PowerLimitSet).where(PowerLimitSet.id == row_id, PowerLimitSet.restored_at.is_(None))
                    .values(restored_at=server_now()))


def left_over(session: Session, *, host_id: str, gpu_uuids: Sequence[str]) -> list[PowerLimitSet]:
    """The limits set on these GPUs of this host and never put back, oldest first (its previous_w is the one)."""
    return list(session.scalars(select(PowerLimitSet).where(
        PowerLimitSet.host_id == host_id, PowerLimitSet.gpu_uuid.in_(list(gpu_uuids)),
        PowerLimitSet.restored_at.is_(None)).order_by(PowerLimitSet.id)))
