"""v_decode: each run's prefill and decode energy, decode per generated token (runs with `measure_prefill`).

A prefill window runs the query window's prompts for one new token each and stores its own units
(output_tokens = queries); decode = query - prefill, over queries x (max_new_tokens - 1) generated tokens: the
query window's output tokens less the prefill's. Energy is the headline. Reads measurements, runs and jobs
only, so other views can be rebuilt without it.
"""

from __future__ import annotations

from migrations.views.energy import HEADLINE_KWH

_Q, _P = HEADLINE_KWH.replace("m.", "q."), HEADLINE_KWH.replace("m.", "p.")

_V0016 = f"""
CREATE VIEW v_decode AS
SELECT j.sweep_id, j.id AS job_id, j.task, j.model, j.hardware_class, j.cell_key, j.max_new_tokens,
       r.id AS run_id, r.dataset, r.repetition, q.n_queries,
       {_Q} AS query_energy_kwh, {_P} AS prefill_energy_kwh,
       {_Q} - {_P} AS decode_energy_kwh,
       q.gpu_energy_kwh - p.gpu_energy_kwh AS decode_gpu_energy_kwh,
       q.output_tokens - p.output_tokens AS decode_tokens,
       ({_Q} - {_P}) / NULLIF(q.output_tokens - p.output_tokens, 0) AS kwh_per_decode_token,
       (q.gpu_energy_kwh - p.gpu_energy_kwh) / NULLIF(q.output_tokens - p.output_tokens, 0)
           AS gpu_kwh_per_decode_token,
       {_P} * 1000.0 / NULLIF(p.n_queries, 0) AS prefill_kwh_per_1k_queries,
       (q.is_unreliable OR p.is_unreliable) AS is_unreliable
FROM measurements q
JOIN measurements p ON p.run_id = q.run_id AND p.phase = 'prefill'
JOIN runs r ON r.id = q.run_id
JOIN jobs j ON j.id = r.job_id
WHERE q.phase = 'query'
"""

VERSIONS = {"v_decode": {"0016": lambda dialect: _V0016}}
