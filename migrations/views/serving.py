"""v_serving and v_serving_cells (0020): served runs (worker/engines) and their cells.

v_serving: one row per served run, its window's headline energy beside its steady part's. The steady part's
energy is stored per component as the meter read it (node-wide CPU and RAM); its headline takes the GPU part
whole and the CPU and RAM parts by the window's attributed share (1 where nothing was attributed), as the
window's own headline does (energy.HEADLINE_KWH). Energy per output token and per request divide it by the
tokens and request-equivalents inside the steady part. v_serving_cells: per cell (job), means over its runs.

0029: v_serving_cells over the runs with a GPU reading only (expressions.kept: a `gpu-energy-zero` window holds
no measurement); `excluded_runs` counts the others.
"""

from __future__ import annotations

from migrations.views.energy import HEADLINE_KWH
from migrations.views.expressions import excluded, kept

_STEADY_KWH = ("(s.steady_gpu_energy_kwh"
               " + s.steady_cpu_energy_kwh * COALESCE(m.cpu_energy_attributed_kwh / NULLIF(m.cpu_energy_kwh, 0), 1.0)"
               " + s.steady_ram_energy_kwh * COALESCE(m.ram_energy_attributed_kwh / NULLIF(m.ram_energy_kwh, 0), 1.0))")

_V0020_SERVING = f"""
CREATE VIEW v_serving AS
SELECT j.sweep_id, j.id AS job_id, j.task, j.model, j.hardware_class, j.cell_key, j.engine, j.engine_version,
       j.max_new_tokens, s.concurrency, s.request_rate,
       r.id AS run_id, r.dataset, r.repetition, m.id AS measurement_id, m.worker_id,
       m.duration_s, {HEADLINE_KWH} AS energy_kwh,
       s.requests, s.failed_requests, s.input_tokens, s.output_tokens,
       s.steady_started_at, s.steady_ended_at, s.steady_duration_s,
       {_STEADY_KWH} AS steady_energy_kwh,
       s.steady_output_tokens, s.steady_requests,
       {_STEADY_KWH} / NULLIF(s.steady_output_tokens, 0) AS kwh_per_output_token,
       {_STEADY_KWH} / NULLIF(s.steady_requests, 0) AS kwh_per_request,
       s.steady_duration_s / NULLIF(m.duration_s, 0) AS steady_share,
       s.ttft_p50_s, s.ttft_p90_s, s.ttft_p99_s, s.itl_p50_s, s.itl_p90_s, s.itl_p99_s, s.tpot_p50_s,
       s.e2e_p50_s, s.e2e_p99_s, s.throughput_output_tokens_per_s,
       s.client_ttft_mean_s, s.engine_ttft_mean_s, s.client_itl_mean_s, s.engine_itl_mean_s,
       s.client_e2e_mean_s, s.engine_e2e_mean_s, s.preemptions, s.kv_cache_peak, s.engine_load_mean,
       s.flags AS serving_flags, m.flags, m.is_unreliable
FROM serving_runs s
JOIN runs r ON r.id = s.run_id
JOIN jobs j ON j.id = s.job_id
JOIN measurements m ON m.shard_id = s.shard_id AND m.phase IN ('query', 'shard')
"""

_V0020_CELLS = """
CREATE VIEW v_serving_cells AS
SELECT sweep_id, job_id, task, model, hardware_class, cell_key, engine, engine_version, max_new_tokens,
       MAX(concurrency) AS concurrency, MAX(request_rate) AS request_rate,
       COUNT(*) AS runs, COUNT(kwh_per_output_token) AS steady_runs,
       AVG(kwh_per_output_token) AS kwh_per_output_token, AVG(kwh_per_request) AS kwh_per_request,
       AVG(itl_p99_s) AS itl_p99_s, AVG(ttft_p50_s) AS ttft_p50_s, AVG(e2e_p50_s) AS e2e_p50_s,
       AVG(throughput_output_tokens_per_s) AS throughput_output_tokens_per_s, AVG(steady_share) AS steady_share,
       SUM(requests) AS requests, SUM(output_tokens) AS output_tokens
FROM v_serving
GROUP BY sweep_id, job_id, task, model, hardware_class, cell_key, engine, engine_version, max_new_tokens
"""

_CELL_MEANS = ("kwh_per_output_token", "kwh_per_request", "itl_p99_s", "ttft_p50_s", "e2e_p50_s",
               "throughput_output_tokens_per_s", "steady_share")


def _cells_0029() -> str:
    figures = [f"COUNT({kept('1', 'flags')}) AS runs", f"COUNT({kept('kwh_per_output_token', 'flags')}) AS steady_runs",
               *(f"AVG({kept(name, 'flags')}) AS {name}" for name in _CELL_MEANS),
               *(f"SUM({kept(name, 'flags')}) AS {name}" for name in ("requests", "output_tokens")),
               f"SUM({excluded('flags')}) AS excluded_runs"]
    separator = ",\n       "
    return f"""
CREATE VIEW v_serving_cells AS
SELECT sweep_id, job_id, task, model, hardware_class, cell_key, engine, engine_version, max_new_tokens,
       MAX(concurrency) AS concurrency, MAX(request_rate) AS request_rate,
       {separator.join(figures)}
FROM v_serving
GROUP BY sweep_id, job_id, task, model, hardware_class, cell_key, engine, engine_version, max_new_tokens
"""


VERSIONS = {"v_serving": {"0020": lambda dialect: _V0020_SERVING},
            "v_serving_cells": {"0020": lambda dialect: _V0020_CELLS, "0029": lambda dialect: _cells_0029()}}
