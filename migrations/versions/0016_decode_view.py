"""v_decode: each run's prefill and decode energy, decode per generated token (runs with `measure_prefill`).

A prefill window runs the query window's prompts for one new token each and
stores its own units (output_tokens = queries); decode = query - prefill, over
queries x (max_new_tokens - 1) generated tokens: the query window's output
tokens less the prefill's. No run without a prefill window appears, and a
cell with max_new_tokens = 1 has no decode tokens (NULL per token). Reads
measurements, runs and jobs only, so other views can be rebuilt without it.

Energy is the headline (0014_headline_views): a window's own GPU energy plus
its attributed CPU and RAM, the node-wide reading where nothing was
attributed; the expression is copied here, frozen like the revision.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_NOT_ATTRIBUTED = "(m.cpu_energy_attributed_kwh IS NULL AND m.ram_energy_attributed_kwh IS NULL)"
_HEADLINE_KWH = (f"(CASE WHEN {_NOT_ATTRIBUTED} THEN m.energy_kwh ELSE m.gpu_energy_kwh "
                 "+ COALESCE(m.cpu_energy_attributed_kwh, m.cpu_energy_kwh) "
                 "+ COALESCE(m.ram_energy_attributed_kwh, m.ram_energy_kwh) END)")
Q, P = _HEADLINE_KWH.replace("m.", "q."), _HEADLINE_KWH.replace("m.", "p.")

V_DECODE = f"""
CREATE VIEW v_decode AS
SELECT j.sweep_id, j.id AS job_id, j.task, j.model, j.hardware_class, j.cell_key, j.max_new_tokens,
       r.id AS run_id, r.dataset, r.repetition, q.n_queries,
       {Q} AS query_energy_kwh, {P} AS prefill_energy_kwh,
       {Q} - {P} AS decode_energy_kwh,
       q.gpu_energy_kwh - p.gpu_energy_kwh AS decode_gpu_energy_kwh,
       q.output_tokens - p.output_tokens AS decode_tokens,
       ({Q} - {P}) / NULLIF(q.output_tokens - p.output_tokens, 0) AS kwh_per_decode_token,
       (q.gpu_energy_kwh - p.gpu_energy_kwh) / NULLIF(q.output_tokens - p.output_tokens, 0)
           AS gpu_kwh_per_decode_token,
       {P} * 1000.0 / NULLIF(p.n_queries, 0) AS prefill_kwh_per_1k_queries,
       (q.is_unreliable OR p.is_unreliable) AS is_unreliable
FROM measurements q
JOIN measurements p ON p.run_id = q.run_id AND p.phase = 'prefill'
JOIN runs r ON r.id = q.run_id
JOIN jobs j ON j.id = r.job_id
WHERE q.phase = 'query'
"""


def upgrade() -> None:
    op.execute(V_DECODE)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_decode")
