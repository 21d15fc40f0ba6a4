"""Reference sets: published results (AI Energy Score's leaderboard) stored to rate a sweep's models against.

Keyword-only functions on a session; the caller owns the transaction, so a file that fails to import leaves
nothing behind. Importing a set again replaces its rows for the tasks given (a leaderboard update).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from db.models import ReferenceResult


def store_reference(session: Session, *, name: str, rows: Iterable[dict[str, Any]]) -> int:
    """Replace set `name`'s rows for the tasks in `rows` with them; the number stored."""
    rows = [dict(row, name=name) for row in rows]
    tasks = sorted({row["task"] for row in rows})
    session.execute(delete(ReferenceResult).where(ReferenceResult.name == name, ReferenceResult.task.in_(tasks)))
    if rows:
        session.execute(insert(ReferenceResult), rows)
    return len(rows)


def reference_names(session: Session) -> list[str]:
    return list(session.scalars(select(ReferenceResult.name).distinct().order_by(ReferenceResult.name)))


def reference_rows(session: Session, *, name: str) -> list[dict[str, Any]]:
    """Set `name` as rating rows (task, model, size_class, GPU energy per 1,000 queries); [] if there is none."""
    found = session.scalars(select(ReferenceResult).where(ReferenceResult.name == name)
                            .order_by(ReferenceResult.task, ReferenceResult.model))
    return [{"task": r.task, "model": r.model, "size_class": r.size_class, "gpu_kwh_per_1k_mean": r.gpu_kwh_per_1k,
             "kwh_per_1k_mean": None, "published_stars": r.published_stars, "cell_key": ""} for r in found]
