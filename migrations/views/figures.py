"""Summary tables kept in step with the windows (0032): what the summary views aggregated from every window at query
time, stored per job, per cell (job x dataset) and per (job, measurement set-up), and recomputed for the jobs a
write touches, in the writer's own transaction, by triggers on `measurements` and `runs`.

Each figure keeps one definition: the rows are the SELECTs of the views' 0029 versions (per_job_0029, the medians,
datasets, latest load and per-job means of v_model_summary, per_cell_0029 of v_cell_summary, v_sweep_progress's
energy totals) restricted to a set of jobs (`for_jobs`), so a table row holds exactly what the old view computed
for that job. A report or `status` then reads one sweep's rows, never every window of every sweep.

- job_figures: one row per job a window or a finished run has touched; `has_query` = 1 where the job has query
  windows (the rows v_model_summary, v_task_summary and v_hardware_summary had); the energy totals of
  v_sweep_progress count every job with windows.
- cell_figures: per_cell_0029's rows (v_cell_summary's, job columns included).
- job_setups: per job, its query windows grouped by worker and measurement set-up (db.results.views.provenance_rows).

Postgres: statement-level AFTER triggers (transition tables) note the jobs a statement touched (figures_pending),
and a deferred constraint trigger calls wattsweep_refresh_figures(those job ids) once, at commit; every function
is SECURITY DEFINER with a pinned search_path, so that nodes need no write grant on the tables and cannot forge a
figure. Two writers of one job serialise on its job_figures row: each first makes sure the row exists, locks it
(job id order, all in one call: no deadlock between writers of several jobs), and only then recomputes, in a new
statement whose snapshot has the other writer's committed windows. A transaction that must read its own figures
before it commits runs `SET CONSTRAINTS wattsweep_figures_at_commit IMMEDIATE`. SQLite (local mode, one writer):
row-level triggers recompute the row's job at once.
"""

from __future__ import annotations

import re

from migrations.views.cell_summary import per_cell_0029
from migrations.views.energy import HEADLINE_KWH, PER_1K
from migrations.views.expressions import kept
from migrations.views.model_summary import (
    DATASETS_0007,
    LATEST_LOAD_0029,
    PER_JOB_EXTRA_0029,
    medians_0021,
)
from migrations.views.per_job import PER_JOB_COLUMNS_0029, per_job_0029
from migrations.views.sweep_progress import JOB_ENERGY_0029

TABLES = ("job_figures", "cell_figures", "job_setups")

# v_model_summary's per-job subqueries (md, ds, l, x) and v_sweep_progress's energy totals (e).
EXTRA_COLUMNS = {
    "median_x": "md.median_x", "datasets": "ds.datasets", "load_energy_kwh": "l.energy_kwh",
    "load_duration_s": "l.duration_s",
    **{name: f"x.{name}" for name in ("latency_p50_s", "latency_p95_s", "throughput", "ttft_p50_s", "output_p50",
                                      "output_p95", "output_tokens", "out_queries", "out_energy", "audio_s")},
    "query_energy": "e.query_energy", "load_energy": "e.load_energy", "node_query_energy": "e.node_query_energy",
}
JOB_FIGURE_COLUMNS = ["job_id", "has_query", *PER_JOB_COLUMNS_0029, *EXTRA_COLUMNS]

# provenance_rows' set-up of a query window (the run's worker stands in where the window names none).
SETUP_KEYS = ["cpu_model", "gpu_model", "gpu_count", "cpu_method", "gpu_method", "ram_method", "tracking_mode",
              "codecarbon_version", "carbon_intensity_source"]


def for_jobs(sql: str, jobs: str) -> str:
    """`sql` with every `FROM measurements|runs <alias>` read only for the jobs that `jobs` (a condition on a column
    `job_id`) selects: the same SELECT, over those jobs' rows."""
    return re.sub(r"FROM (measurements|runs) (\w+)\b",
                  lambda found: f"FROM (SELECT * FROM {found[1]} WHERE {jobs}) {found[2]}", sql)


def job_figures_select(dialect: str, jobs: str) -> str:
    """One row per existing job that `jobs` selects: JOB_FIGURE_COLUMNS."""
    x = kept(f"{HEADLINE_KWH} {PER_1K}")
    # the job's sweep from `jobs`: a job with load windows only has no per-job row, and its load energy counts
    per_job = ", ".join("t.sweep_id" if name == "sweep_id" else f"jw.{name}" for name in PER_JOB_COLUMNS_0029)
    extra = ", ".join(f"{value} AS {name}" for name, value in EXTRA_COLUMNS.items())
    return for_jobs(f"""SELECT t.job_id AS job_id, CASE WHEN jw.job_id IS NULL THEN 0 ELSE 1 END AS has_query,
        {per_job},
        {extra}
    FROM (SELECT job_id, sweep_id FROM (SELECT id AS job_id, sweep_id FROM jobs) k WHERE {jobs}) t
    LEFT JOIN ({per_job_0029(dialect)}) jw ON jw.job_id = t.job_id
    LEFT JOIN ({medians_0021(dialect, x)}) md ON md.job_id = t.job_id
    LEFT JOIN ({DATASETS_0007}) ds ON ds.job_id = t.job_id
    LEFT JOIN {LATEST_LOAD_0029} l ON l.job_id = t.job_id
    LEFT JOIN {PER_JOB_EXTRA_0029} x ON x.job_id = t.job_id
    LEFT JOIN ({JOB_ENERGY_0029}) e ON e.job_id = t.job_id""", jobs)


def cell_figures_select(dialect: str, jobs: str) -> str:
    return for_jobs(per_cell_0029(dialect), jobs)


def job_setups_select(jobs: str) -> str:
    """Per job, worker, hostname and set-up: the query windows of runs, and their carbon intensity's range."""
    keys = ", ".join(f"m.{name}" for name in SETUP_KEYS)
    return for_jobs(f"""SELECT m.job_id AS job_id, COALESCE(m.worker_id, r.worker_id) AS worker_id,
        m.hostname AS hostname, {keys}, count(*) AS runs, min(m.carbon_intensity_g_per_kwh) AS intensity_min,
        max(m.carbon_intensity_g_per_kwh) AS intensity_max
    FROM measurements m LEFT JOIN runs r ON r.id = m.run_id AND m.worker_id IS NULL
    WHERE m.phase = 'query' AND m.run_id IS NOT NULL
    GROUP BY m.job_id, COALESCE(m.worker_id, r.worker_id), m.hostname, {keys}""", jobs)


def create_tables(dialect: str) -> list[str]:
    """The tables, typed as the SELECTs type their columns (CREATE TABLE AS, no rows), and their keys."""
    none = "job_id IS NULL"
    suffix = " WITH NO DATA" if dialect == "postgresql" else ""
    empty = "" if dialect == "postgresql" else " LIMIT 0"
    return [
        f"CREATE TABLE job_figures AS {job_figures_select(dialect, none)}{empty}{suffix}",
        "CREATE UNIQUE INDEX ix_job_figures_job_id ON job_figures (job_id)",
        "CREATE INDEX ix_job_figures_sweep_id ON job_figures (sweep_id)",
        f"CREATE TABLE cell_figures AS {cell_figures_select(dialect, none)}{empty}{suffix}",
        "CREATE INDEX ix_cell_figures_job_id ON cell_figures (job_id)",
        "CREATE INDEX ix_cell_figures_sweep_id ON cell_figures (sweep_id)",
        f"CREATE TABLE job_setups AS {job_setups_select(none)}{empty}{suffix}",
        "CREATE INDEX ix_job_setups_job_id ON job_setups (job_id)",
    ]


def _refresh_statements(dialect: str, jobs: str) -> list[str]:
    """Recompute the rows of the jobs `jobs` selects (the caller holds their locks on Postgres)."""
    columns = ", ".join(JOB_FIGURE_COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in JOB_FIGURE_COLUMNS[1:])
    deleted = f"{jobs} AND job_id NOT IN (SELECT id FROM jobs)"
    return [
        f"DELETE FROM job_figures WHERE {deleted}",
        f"INSERT INTO job_figures ({columns}) SELECT * FROM ({job_figures_select(dialect, jobs)}) f WHERE true "
        f"ON CONFLICT (job_id) DO UPDATE SET {updates}",
        f"DELETE FROM cell_figures WHERE {jobs}",
        f"INSERT INTO cell_figures {cell_figures_select(dialect, jobs)}",
        f"DELETE FROM job_setups WHERE {jobs}",
        f"INSERT INTO job_setups {job_setups_select(jobs)}",
    ]


def backfill(dialect: str) -> list[str]:
    return _refresh_statements(dialect, "job_id IN (SELECT id FROM jobs)")


REFRESH_FUNCTION = "wattsweep_refresh_figures(bigint[])"
PENDING = "figures_pending"  # Postgres: the jobs a transaction touched, refreshed at its commit
# runs: a run's status matters where it becomes or stops being `done` (the datasets count), its worker where it
# stands in for a window's (job_setups).
_RUN_CHANGED = ("o.status IS DISTINCT FROM n.status AND 'done' IN (o.status, n.status) "
                "OR o.worker_id IS DISTINCT FROM n.worker_id")
# A submit inserts a million pending runs: a statement-level trigger would keep them all in a transition table to
# find none done; a row-level one with a WHEN condition costs nothing for the rows it does not fire on.
ROW_LEVEL = {("runs", "INSERT"): "NEW.status = 'done'"}
TRIGGERS = {  # (table, event): the job ids the statement touched, from its transition tables
    ("measurements", "INSERT"): "SELECT job_id FROM new_rows",
    ("measurements", "UPDATE"): "SELECT job_id FROM new_rows UNION SELECT job_id FROM old_rows",
    ("measurements", "DELETE"): "SELECT job_id FROM old_rows",
    ("runs", "INSERT"): "SELECT NEW.job_id AS job_id",  # row-level, WHEN done: see ROW_LEVEL
    ("runs", "UPDATE"): f"SELECT n.job_id FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE {_RUN_CHANGED}",
    ("runs", "DELETE"): "SELECT job_id FROM old_rows WHERE status = 'done'",
}


def postgres_triggers() -> list[str]:
    """The refresh function, one trigger function per (table, event), and the triggers."""
    body = ";\n    ".join(_refresh_statements("postgresql", "job_id = ANY(ids)"))
    statements = [f"""CREATE FUNCTION wattsweep_refresh_figures(ids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    -- The lock that serialises writers of one job: its row, made if missing, locked in job id order. Each
    -- statement below then takes a new snapshot, with every window committed before the lock was granted.
    INSERT INTO job_figures (job_id) SELECT id FROM jobs WHERE id = ANY(ids) ORDER BY id ON CONFLICT DO NOTHING;
    PERFORM 1 FROM job_figures WHERE job_id = ANY(ids) ORDER BY job_id FOR UPDATE;
    {body};
END
$$""", f"REVOKE EXECUTE ON FUNCTION {REFRESH_FUNCTION} FROM PUBLIC"]
    # At commit, once: the jobs the transaction touched, in one refresh (job id order). Refreshing at each statement
    # would take a job's lock in the middle of the transaction: a worker's store updates its run (its job's lock)
    # before attribution takes the host's lock, and attribution revises co-located windows of other jobs, so two
    # workers could each hold a lock the other waits for. At commit the host's lock is already held, and every
    # job lock a transaction takes is taken in one call, in order.
    statements += [f"CREATE TABLE {PENDING} (xid xid8 NOT NULL DEFAULT pg_current_xact_id(), job_id bigint NOT NULL)",
                   f"CREATE INDEX ix_{PENDING}_xid ON {PENDING} (xid)",
                   f"""CREATE FUNCTION wattsweep_figures_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
DECLARE
    ids bigint[];
BEGIN
    WITH gone AS (DELETE FROM {PENDING} WHERE xid = pg_current_xact_id() RETURNING job_id)
    SELECT array_agg(DISTINCT job_id ORDER BY job_id) INTO ids FROM gone;
    IF ids IS NOT NULL THEN
        PERFORM wattsweep_refresh_figures(ids);
    END IF;
    RETURN NULL;
END
$$""", "REVOKE EXECUTE ON FUNCTION wattsweep_figures_at_commit() FROM PUBLIC",
                   f"CREATE CONSTRAINT TRIGGER wattsweep_figures_at_commit AFTER INSERT ON {PENDING} "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wattsweep_figures_at_commit()"]
    for (table, event), touched in TRIGGERS.items():
        name = f"wattsweep_figures_{table}_{event.lower()}"
        referencing = {"INSERT": "NEW TABLE AS new_rows", "DELETE": "OLD TABLE AS old_rows",
                       "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows"}[event]
        statements += [f"""CREATE FUNCTION {name}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
    INSERT INTO {PENDING} (job_id)
    SELECT DISTINCT t.job_id FROM ({touched}) t
    WHERE t.job_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM {PENDING} p WHERE p.xid = pg_current_xact_id() AND p.job_id = t.job_id);
    RETURN NULL;
END
$$""", f"REVOKE EXECUTE ON FUNCTION {name}() FROM PUBLIC",
                       f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW WHEN ({ROW_LEVEL[table, event]}) "
                       f"EXECUTE FUNCTION {name}()" if (table, event) in ROW_LEVEL else
                       f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"]
    return statements


def postgres_functions() -> list[str]:
    """Every function postgres_triggers makes (signature), for ownership and the downgrade."""
    return [REFRESH_FUNCTION, "wattsweep_figures_at_commit()",
            *(f"wattsweep_figures_{table}_{event.lower()}()" for table, event in TRIGGERS)]


_SQLITE_TRIGGERS = {  # (table, event): (WHEN condition, the jobs recomputed)
    ("measurements", "INSERT"): ("", "job_id = NEW.job_id"),
    ("measurements", "UPDATE"): ("", "job_id IN (OLD.job_id, NEW.job_id)"),
    ("measurements", "DELETE"): ("", "job_id = OLD.job_id"),
    ("runs", "INSERT"): (" WHEN NEW.status = 'done'", "job_id = NEW.job_id"),
    ("runs", "UPDATE"): (" WHEN (OLD.status IS NOT NEW.status AND 'done' IN (OLD.status, NEW.status))"
                         " OR OLD.worker_id IS NOT NEW.worker_id", "job_id = NEW.job_id"),
    ("runs", "DELETE"): (" WHEN OLD.status = 'done'", "job_id = OLD.job_id"),
}


def sqlite_triggers() -> list[str]:
    statements = []
    for (table, event), (when, jobs) in _SQLITE_TRIGGERS.items():
        body = "".join(f"    {statement};\n" for statement in _refresh_statements("sqlite", jobs))
        statements.append(f"CREATE TRIGGER wattsweep_figures_{table}_{event.lower()} AFTER {event} ON {table}"
                          f"{when}\nBEGIN\n{body}END")
    return statements


def sqlite_trigger_names() -> list[str]:
    return [f"wattsweep_figures_{table}_{event.lower()}" for table, event in _SQLITE_TRIGGERS]
