"""v_model_kind_summary: per (sweep, task, model kind), the models' energy: multi-purpose beside task-specific.

The study's second finding: a multi-purpose generative model prompted zero-shot costs far more per query than
a model fine-tuned for the task. The statistics treat every model (job) as one sample, its mean over runs.
Built on v_model_summary (one row per job), so the per-job figures are computed in one place: a revision that
drops and recreates v_model_summary must drop this view first and create it again afterwards.
"""

from __future__ import annotations

from migrations.views.expressions import create_view, median, nulls_last

_GROUP = "sweep_id, sweep_name, task, model_kind"
_X, _N, _RANK = "k.kwh_per_1k_mean", "k.models_measured", "k.model_rank"
_COLUMNS_0009 = {
    "sweep_id": "k.sweep_id", "sweep_name": "k.sweep_name", "task": "k.task", "model_kind": "k.model_kind",
    "models": "count(DISTINCT k.model)", "runs": "CAST(sum(k.runs) AS BIGINT)",
    "kwh_per_1k_model_mean": f"avg({_X})", "kwh_per_1k_model_median": median(_X, _N, _RANK),
    "kwh_per_1k_model_min": f"min({_X})", "kwh_per_1k_model_max": f"max({_X})",
    "g_co2e_per_1k_model_mean": "avg(k.g_co2e_per_1k_mean)",
}
# 0014: plus the node-wide mean over models.
_COLUMNS_0014 = _COLUMNS_0009 | {"node_kwh_per_1k_model_mean": "avg(k.node_kwh_per_1k_mean)"}


def _view(columns: dict[str, str], node: str, order_break: str) -> str:
    """`node`: the node-wide column read from v_model_summary; `order_break`: 0009 wrapped its ORDER BY."""
    ranked = f"""SELECT ms.sweep_id, ms.sweep_name, ms.task, ms.model_kind, ms.model, ms.runs, ms.kwh_per_1k_mean,
        ms.g_co2e_per_1k_mean{node},
        count(ms.kwh_per_1k_mean) OVER (PARTITION BY {_GROUP}) AS models_measured,
        row_number() OVER (PARTITION BY {_GROUP} ORDER BY {nulls_last('ms.kwh_per_1k_mean', order_break)}) AS model_rank
    FROM v_model_summary ms"""
    body = f"FROM (\n{ranked}\n) k\nGROUP BY {', '.join('k.' + c for c in _GROUP.split(', '))}"
    return create_view("v_model_kind_summary", columns, body)


VERSIONS = {"v_model_kind_summary": {
    "0009": lambda dialect: _view(_COLUMNS_0009, "", ",\n            "),
    "0014": lambda dialect: _view(_COLUMNS_0014, ", ms.node_kwh_per_1k_mean", ", "),
}}
