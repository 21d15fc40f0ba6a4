"""The result views' SQL, one source per view: every version of every view, named by the revision that made it.

A migration that adds or changes a view creates it as it stands at its own revision, and its downgrade creates
it as it stood at the revision before (`definition(name, down_revision, dialect)`). Each version is written
once, as the changes from the version before where that is what it is; shared expressions (the headline
energy, the estimate flags, medians) live in `expressions` and `energy`. Nothing here reads a migration file.

Versions are frozen like the revisions that use them: a released version is never edited (a database migrated
with it keeps its text); a change is a new version, named after the new revision that creates it. The test
tests/db/test_view_versions.py pins the SQL of every version on both dialects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from migrations.views import (
    cell_summary,
    decode,
    group_summaries,
    model_kind_summary,
    model_summary,
    runs,
    serving,
    sweep_progress,
)

# view name -> {revision that introduced the version: builder(dialect) -> CREATE VIEW statement}
VERSIONS: dict[str, dict[str, Callable[[str], str]]] = {
    **runs.VERSIONS, **model_summary.VERSIONS, **group_summaries.VERSIONS, **sweep_progress.VERSIONS,
    **model_kind_summary.VERSIONS, **cell_summary.VERSIONS, **decode.VERSIONS, **serving.VERSIONS,
}


def definition(name: str, revision: str, dialect: str) -> str:
    """The CREATE VIEW statement of `name` as it stood at `revision`: its latest version at or before it.

    Revision ids are zero-padded numbers ("0014"), so they compare as strings."""
    versions = [version for version in VERSIONS[name] if version <= revision]
    if not versions:
        raise LookupError(f"{name} does not exist at revision {revision}")
    return VERSIONS[name][max(versions)](dialect)


def recreate_views(op: Any, names: Sequence[str], revision: str) -> None:
    """Put the views `names` (in creation order: a view after the views it reads) as they stood at `revision`,
    through alembic's `op`: each dropped, last first, then created, and on Postgres readable by the reader role."""
    dialect = op.get_bind().dialect.name
    for name in reversed(names):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name in names:
        op.execute(definition(name, revision, dialect))
    if dialect == "postgresql":
        op.execute(f"GRANT SELECT ON {', '.join(names)} TO wattsweep_reader")
