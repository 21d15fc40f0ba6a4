"""v_sweep_progress: one row per sweep: jobs and runs by status, when runs finished, query and load energy.

0029: the energy totals leave out windows with no GPU reading (expressions.kept: `gpu-energy-zero`).
0032: the same totals, summed per sweep from the per-job ones in job_figures (migrations/views/figures.py)."""

from __future__ import annotations

from migrations.views.energy import HEADLINE_KWH
from migrations.views.expressions import count_where, create_view, kept

_COLUMNS_0007 = {
    "sweep_id": "s.id", "sweep_name": "s.name", "mode": "s.mode", "hardware_class": "s.hardware_class",
    "created_at": "s.created_at", "cancelled": "s.cancelled",
    "jobs_total": "COALESCE(jc.total, 0)", "jobs_queued": "COALESCE(jc.queued, 0)",
    "jobs_running": "COALESCE(jc.running, 0)", "jobs_done": "COALESCE(jc.done, 0)",
    "jobs_failed": "COALESCE(jc.failed, 0)", "jobs_cancelled": "COALESCE(jc.cancelled, 0)",
    "runs_total": "COALESCE(rc.total, 0)", "runs_pending": "COALESCE(rc.pending, 0)",
    "runs_done": "COALESCE(rc.done, 0)", "runs_failed": "COALESCE(rc.failed, 0)",
    "pct_runs_done": "CASE WHEN rc.total > 0 THEN 100.0 * rc.done / rc.total END",
    "first_run_finished_at": "rc.first_finished_at", "last_run_finished_at": "rc.last_finished_at",
    "query_energy_kwh_total": "mc.query_energy", "load_energy_kwh_total": "mc.load_energy",
}
# 0014: the energy is the headline; the node-wide query energy beside it.
_COLUMNS_0014 = _COLUMNS_0007 | {"node_query_energy_kwh_total": "mc.node_query_energy"}
_NODE_QUERY = ",\n        sum(CASE WHEN m.phase = 'query' THEN m.energy_kwh END) AS node_query_energy"


def _energies(energy: str, node_query: str) -> str:
    return f"""SELECT j.sweep_id AS sweep_id,
        sum(CASE WHEN m.phase = 'query' THEN {energy} END) AS query_energy,
        sum(CASE WHEN m.phase = 'load' THEN {energy} END) AS load_energy{node_query}
    FROM measurements m JOIN jobs j ON j.id = m.job_id GROUP BY j.sweep_id"""


def _body(energy: str, node_query: str = "", energies: str = "") -> str:
    return f"""FROM sweeps s
LEFT JOIN (
    SELECT sweep_id, count(*) AS total, {count_where('status', 'queued')} AS queued,
        {count_where('status', 'running')} AS running, {count_where('status', 'done')} AS done,
        {count_where('status', 'failed')} AS failed, {count_where('status', 'cancelled')} AS cancelled
    FROM jobs GROUP BY sweep_id
) jc ON jc.sweep_id = s.id
LEFT JOIN (
    SELECT j.sweep_id AS sweep_id, count(*) AS total, {count_where('r.status', 'pending')} AS pending,
        {count_where('r.status', 'done')} AS done, {count_where('r.status', 'failed')} AS failed,
        min(r.finished_at) AS first_finished_at, max(r.finished_at) AS last_finished_at
    FROM runs r JOIN jobs j ON j.id = r.job_id GROUP BY j.sweep_id
) rc ON rc.sweep_id = s.id
LEFT JOIN (
    {energies or _energies(energy, node_query)}
) mc ON mc.sweep_id = s.id"""


_NODE_QUERY_0029 = _NODE_QUERY.replace("THEN m.energy_kwh END", f"THEN {kept('m.energy_kwh')} END")
# 0032: 0029's energy totals per job (stored in job_figures: migrations/views/figures.py), summed per sweep.
JOB_ENERGY_0029 = _energies(kept(HEADLINE_KWH), _NODE_QUERY_0029).replace(
    "SELECT j.sweep_id AS sweep_id,", "SELECT m.job_id AS job_id,").replace(
    "FROM measurements m JOIN jobs j ON j.id = m.job_id GROUP BY j.sweep_id", "FROM measurements m GROUP BY m.job_id")
_ENERGIES_0032 = """SELECT sweep_id, sum(query_energy) AS query_energy, sum(load_energy) AS load_energy,
        sum(node_query_energy) AS node_query_energy
    FROM job_figures GROUP BY sweep_id"""

VERSIONS = {"v_sweep_progress": {
    "0007": lambda dialect: create_view("v_sweep_progress", _COLUMNS_0007, _body("m.energy_kwh")),
    "0014": lambda dialect: create_view("v_sweep_progress", _COLUMNS_0014, _body(HEADLINE_KWH, _NODE_QUERY)),
    "0029": lambda dialect: create_view("v_sweep_progress", _COLUMNS_0014,
                                        _body(kept(HEADLINE_KWH), _NODE_QUERY_0029)),
    "0032": lambda dialect: create_view("v_sweep_progress", _COLUMNS_0014, _body("", energies=_ENERGIES_0032)),
}}
