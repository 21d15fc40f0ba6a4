"""Submit at the speed of the database (issue 22): fewer index entries and foreign-key checks per new run and unit.

A sweep of a million runs writes a million runs and a million units (shards) in one transaction; each index and
each foreign-key check is paid a million times (a check costs about as much as an index entry: a lookup and a
row lock on the referenced row):

- `ix_runs_status` goes: no query looks runs up by status alone (they go by job or by id, then filter);
- `ix_runs_job_id` becomes `uq_runs_job_id_id` (job_id, id): the same lookups by job, and the key that the
  units' one foreign key names:
- one foreign key from a unit to its run and job together, (job_id, run_id) -> runs (job_id, id), instead of
  one to jobs and one to runs: one check per unit instead of two, and it also says that a unit's job is its run's
  job, which the two did not. Deleting a job still deletes its units (through its runs).

SQLite keeps its foreign keys (changing them would rebuild tables the result views read); the indexes change
there too. No grants change: no table or column is new.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06
"""

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_runs_status", table_name="runs")
    op.create_index("uq_runs_job_id_id", "runs", ["job_id", "id"], unique=True)
    op.drop_index("ix_runs_job_id", table_name="runs")
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key("fk_shards_job_id_run_id_runs", "shards", "runs", ["job_id", "run_id"],
                              ["job_id", "id"], ondelete="CASCADE")
        op.drop_constraint("fk_shards_job_id_jobs", "shards", type_="foreignkey")
        op.drop_constraint("fk_shards_run_id_runs", "shards", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key("fk_shards_run_id_runs", "shards", "runs", ["run_id"], ["id"], ondelete="CASCADE")
        op.create_foreign_key("fk_shards_job_id_jobs", "shards", "jobs", ["job_id"], ["id"], ondelete="CASCADE")
        op.drop_constraint("fk_shards_job_id_run_id_runs", "shards", type_="foreignkey")
    op.create_index("ix_runs_job_id", "runs", ["job_id"], unique=False)
    op.drop_index("uq_runs_job_id_id", table_name="runs")
    op.create_index("ix_runs_status", "runs", ["status"], unique=False)
