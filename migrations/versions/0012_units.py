"""Units: shards (runs, or parts of long runs) claimed one at a time under their own leases.

- `shards`: every run has at least one; a run measured in K parts has K. The
  lease (worker id + per-process token + heartbeat, server clock) lives here,
  not on the job, so that several workers can work on one job.
- `runs.n_shards`; `jobs.expected_s`, `load_expected_s`, `estimate_source` (duration estimates written at
  submit) and `load_failures`; `workers.token` (one live process per worker id) and `stopped_reason`;
  `measurements.shard_id` (the unit a window measured) and `measurements.shards` (a sharded run's sum row).
- `unavailable`: a worker process that found a job's model or dataset missing on its node.

Existing runs get one shard each, with the run's status (a finished sweep stays finished).

Plain ADD COLUMNs (no batch copy): SQLite cannot rebuild a table the result views read. For the same
reason `measurements.shard_id` has no foreign key constraint.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("shard_index", sa.Integer(), nullable=False),
        sa.Column("query_start", sa.Integer(), nullable=False),
        sa.Column("n_queries", sa.Integer(), nullable=False),
        sa.Column("expected_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_shards_job_id_jobs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_shards_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shards")),
        sa.UniqueConstraint("run_id", "shard_index", name=op.f("uq_shards_run_id_shard_index")),
    )
    op.create_index(op.f("ix_shards_job_id_status"), "shards", ["job_id", "status"], unique=False)
    op.create_table(
        "unavailable",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_unavailable_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unavailable")),
    )
    op.create_index(op.f("ix_unavailable_job_id"), "unavailable", ["job_id"], unique=False)

    op.add_column("runs", sa.Column("n_shards", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("jobs", sa.Column("load_failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("expected_s", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("load_expected_s", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("estimate_source", sa.String(length=20), nullable=True))
    op.add_column("workers", sa.Column("token", sa.String(length=64), nullable=True))
    op.add_column("workers", sa.Column("stopped_reason", sa.Text(), nullable=True))
    op.add_column("measurements", sa.Column("shard_id", sa.Integer(), nullable=True))
    op.add_column("measurements", sa.Column("shards", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_measurements_shard_id"), "measurements", ["shard_id"], unique=False)

    # One shard per existing run, in its run's state.
    op.execute("""
        INSERT INTO shards (job_id, run_id, shard_index, query_start, n_queries, status, attempts, worker_id,
                            error, finished_at)
        SELECT job_id, id, 0, 0, n_queries, status, CASE WHEN status = 'pending' THEN 0 ELSE 1 END, worker_id,
               error, finished_at
        FROM runs
    """)


def downgrade() -> None:
    op.drop_index(op.f("ix_measurements_shard_id"), table_name="measurements")
    for table, column in (("measurements", "shards"), ("measurements", "shard_id"), ("workers", "stopped_reason"),
                          ("workers", "token"), ("jobs", "estimate_source"), ("jobs", "load_expected_s"),
                          ("jobs", "expected_s"), ("jobs", "load_failures"), ("runs", "n_shards")):
        op.drop_column(table, column)  # SQLite >= 3.35 drops a column in place
    op.drop_index(op.f("ix_unavailable_job_id"), table_name="unavailable")
    op.drop_table("unavailable")
    op.drop_index(op.f("ix_shards_job_id_status"), table_name="shards")
    op.drop_table("shards")
