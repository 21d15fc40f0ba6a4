"""Served jobs (worker/engines): the engine with the job, the load axes, each served unit's figures, two views.

- jobs: engine (vllm | openai), engine_version, engine_args (the full command line, or the endpoint), engine_log
  (the kept log's path), concurrency and request_rate (the cell's load: closed or open loop).
- serving_runs: one row per served unit: requests and tokens (the engine's usage), latency percentiles (TTFT,
  inter-token, TPOT, end-to-end), the client's and the engine's mean latencies side by side, preemptions, peak
  KV-cache use, the engine's mean load (running + waiting) over the steady part, and the steady part (its span, its energy per component as the meter read it, the tokens and
  request-equivalents inside it), flags (no-steady-state, steady-short, ...), the load samples and each
  request's latencies.
- v_serving: per served run, the steady part's headline energy (its GPU energy plus its CPU and RAM scaled by
  the window's attributed share: what 0014's headline does for the whole window) and from it kWh per output
  token and per request; the run window's headline beside it.
- v_serving_cells: per cell (job), means over its runs: what the report plots against concurrency and for the
  Pareto front of energy per token against p99 inter-token latency.

Plain ADD COLUMNs: SQLite cannot rebuild a table the result views read. The views' SQL: migrations/views/serving.py.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from migrations.views import definition

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

JOB_COLUMNS = [("engine", sa.String(20)), ("engine_version", sa.String(50)), ("engine_args", sa.JSON()),
               ("engine_log", sa.Text()), ("concurrency", sa.Integer()), ("request_rate", sa.Float())]
FLOATS = ["steady_duration_s", "steady_cpu_energy_kwh", "steady_gpu_energy_kwh", "steady_ram_energy_kwh",
          "steady_output_tokens", "steady_requests", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s",
          "itl_p90_s", "itl_p99_s", "tpot_p50_s", "e2e_p50_s", "e2e_p99_s", "throughput_output_tokens_per_s",
          "client_ttft_mean_s", "client_itl_mean_s", "client_e2e_mean_s", "engine_ttft_mean_s", "engine_itl_mean_s",
          "engine_e2e_mean_s", "preemptions", "kv_cache_peak", "engine_load_mean"]

def upgrade() -> None:
    for name, kind in JOB_COLUMNS:
        op.add_column("jobs", sa.Column(name, kind, nullable=True))
    op.create_table(
        "serving_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE",
                                                        name="fk_serving_runs_job_id_jobs"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE",
                                                        name="fk_serving_runs_run_id_runs"), nullable=False),
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer()),
        sa.Column("request_rate", sa.Float()),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("failed_requests", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger()),
        sa.Column("output_tokens", sa.BigInteger()),
        sa.Column("steady_started_at", sa.DateTime(timezone=True)),
        sa.Column("steady_ended_at", sa.DateTime(timezone=True)),
        *[sa.Column(name, sa.Float()) for name in FLOATS],
        sa.Column("flags", sa.String(300)),
        sa.Column("load_samples", sa.JSON()),
        sa.Column("request_latencies", sa.JSON()),
        sa.PrimaryKeyConstraint("id", name="pk_serving_runs"),
        sa.UniqueConstraint("shard_id", name="uq_serving_runs_shard_id"),
    )
    op.create_index("ix_serving_runs_job_id", "serving_runs", ["job_id"])
    op.create_index("ix_serving_runs_run_id", "serving_runs", ["run_id"])
    dialect = op.get_bind().dialect.name
    op.execute(definition("v_serving", revision, dialect))
    op.execute(definition("v_serving_cells", revision, dialect))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_serving_cells")
    op.execute("DROP VIEW IF EXISTS v_serving")
    op.drop_table("serving_runs")
    for name, _ in reversed(JOB_COLUMNS):
        op.drop_column("jobs", name)
