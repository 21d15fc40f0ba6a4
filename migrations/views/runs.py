"""v_runs: one row per run, its query window's figures and where they came from (the flat view exports read)."""

from __future__ import annotations

from migrations.views.energy import (
    BASELINE,
    BASIS,
    CPU_KWH,
    EMISSIONS_KG,
    HEADLINE_KWH,
    IDLE_KWH,
    LATEST_LOAD,
    NET_KWH,
    NODE_G_PER_1K,
    NODE_LATEST_LOAD,
    NODE_NET_KWH,
    NODE_NET_PER_1K,
    PER_1K,
    RAM_KWH,
)
from migrations.views.expressions import ESTIMATED_ROW, create_view, version_of

# The cell's axes (0011); v_runs keeps the run's own batch_size.
AXES = ["dtype", "max_new_tokens", "num_inference_steps", "height_px", "width_px", "reasoning"]
MEASURED = ["audio_s", "latency_p50_s", "latency_p95_s", "throughput_queries_per_s", "ttft_p50_s",
            "output_tokens_p50", "output_tokens_p95"]


def _body(latest_load: str, baseline: str = "") -> str:
    return f"""FROM runs r
JOIN jobs j ON j.id = r.job_id
JOIN sweeps s ON s.id = j.sweep_id
LEFT JOIN measurements m ON m.run_id = r.id AND m.phase = 'query'
{baseline}LEFT JOIN workers w ON w.id = COALESCE(m.worker_id, r.worker_id)
LEFT JOIN {latest_load} l ON l.job_id = j.id"""


def _columns_0007(dialect: str) -> dict[str, str]:
    return {
        "sweep_id": "s.id", "sweep_name": "s.name", "sweep_mode": "s.mode", "job_id": "j.id", "task": "j.task",
        "model": "j.model", "model_kind": "j.model_kind", "model_revision": "j.model_revision",
        "model_dtype": "j.model_dtype", "num_parameters": "j.num_parameters", "hardware_class": "j.hardware_class",
        "job_status": "j.status", "run_id": "r.id", "dataset": "r.dataset", "repetition": "r.repetition",
        "run_status": "r.status", "run_error": "r.error", "n_queries": "COALESCE(m.n_queries, r.n_queries)",
        "batch_size": "r.batch_size", "finished_at": "r.finished_at", "measurement_id": "m.id",
        "worker_id": "COALESCE(m.worker_id, r.worker_id)", "hostname": "COALESCE(m.hostname, w.hostname)",
        "device": "w.device", "started_at": "m.started_at", "duration_s": "m.duration_s",
        "energy_kwh": "m.energy_kwh", "idle_energy_kwh": "m.idle_energy_kwh", "net_energy_kwh": NODE_NET_KWH,
        "cpu_energy_kwh": "m.cpu_energy_kwh", "gpu_energy_kwh": "m.gpu_energy_kwh",
        "ram_energy_kwh": "m.ram_energy_kwh", "cpu_energy_attributed_kwh": "m.cpu_energy_attributed_kwh",
        "ram_energy_attributed_kwh": "m.ram_energy_attributed_kwh", "emissions_kg": "m.emissions_kg",
        "kwh_per_1k_queries": "m.kwh_per_1k_queries", "net_kwh_per_1k_queries": NODE_NET_PER_1K,
        "g_co2e_per_1k_queries": NODE_G_PER_1K, "input_tokens": "m.input_tokens", "output_tokens": "m.output_tokens",
        "images": "m.images", "cpu_method": "m.cpu_method", "gpu_method": "m.gpu_method",
        "ram_method": "m.ram_method", "estimated_components": f"CASE WHEN m.id IS NOT NULL THEN {ESTIMATED_ROW} END",
        "cpu_model": "m.cpu_model", "gpu_model": "m.gpu_model", "gpu_count": "m.gpu_count",
        "tracking_mode": "m.tracking_mode", "codecarbon_version": "m.codecarbon_version",
        "torch_version": version_of(dialect, "torch"), "transformers_version": version_of(dialect, "transformers"),
        "carbon_intensity_g_per_kwh": "m.carbon_intensity_g_per_kwh",
        "carbon_intensity_source": "m.carbon_intensity_source", "is_outlier": "m.is_outlier",
        "is_unreliable": "m.is_unreliable", "flags": "m.flags", "load_energy_kwh": "l.energy_kwh",
        "load_duration_s": "l.duration_s",
    }


def _columns_0011(dialect: str) -> dict[str, str]:
    """0007's, plus the cell's axes, GPU-only energy per 1,000 queries and latency."""
    return _columns_0007(dialect) | {
        "cell_key": "j.cell_key", **{name: f"j.{name}" for name in AXES},
        "gpu_kwh_per_1k_queries": f"(m.gpu_energy_kwh {PER_1K})",
        **{name: f"m.{name}" for name in MEASURED},
    }


def _columns_0014(dialect: str) -> dict[str, str]:
    """0011's with the headline energy in place of the node-wide one (energy_basis says which a run has),
    without the attributed columns (cpu/ram_energy_kwh are them now), plus the node-wide readings."""
    headline = {
        "energy_kwh": HEADLINE_KWH, "idle_energy_kwh": IDLE_KWH, "net_energy_kwh": NET_KWH,
        "cpu_energy_kwh": CPU_KWH, "ram_energy_kwh": RAM_KWH, "emissions_kg": EMISSIONS_KG,
        "kwh_per_1k_queries": f"({HEADLINE_KWH} {PER_1K})", "net_kwh_per_1k_queries": f"({NET_KWH} {PER_1K})",
        "g_co2e_per_1k_queries": f"({EMISSIONS_KG} * 1000000.0 / NULLIF(m.n_queries, 0))",
    }
    columns = {name: headline.get(name, value) for name, value in _columns_0011(dialect).items()
               if name not in ("cpu_energy_attributed_kwh", "ram_energy_attributed_kwh")}
    return columns | {
        "energy_basis": f"CASE WHEN m.id IS NOT NULL THEN {BASIS} END", "host_id": "m.host_id",
        "max_concurrent_windows": "m.max_concurrent_windows", "shards": "m.shards",
        "node_energy_kwh": "m.energy_kwh", "node_cpu_energy_kwh": "m.cpu_energy_kwh",
        "node_ram_energy_kwh": "m.ram_energy_kwh", "node_idle_energy_kwh": "m.idle_energy_kwh",
        "node_emissions_kg": "m.emissions_kg", "node_kwh_per_1k_queries": f"(m.energy_kwh {PER_1K})",
    }


# 0024: every stored provenance column beside the figures (issue 18): the window's PUE, CPU TDP, GPU UUID and
# state at its start and end, CodeCarbon's warnings, its carbon location, host size and baseline; the job's float32
# numerics (matmul precision, TF32).
PROVENANCE_0024 = {
    **{name: f"m.{name}" for name in (
        "pue", "cpu_tdp_w", "gpu_uuid", "codecarbon_warnings", "country_iso_code", "region", "cpu_count",
        "ram_total_gb", "baseline_id", "ended_at", "cpu_utilization_pct", "gpu_utilization_pct", "ram_utilization_pct",
        *(f"gpu_{name}_{when}{unit}" for when in ("start", "end") for name, unit in (
            ("temperature", "_c"), ("sm_clock", "_mhz"), ("power_limit", "_w"), ("throttle", ""))))},
    **{name: f"j.{name}" for name in ("float32_matmul_precision", "tf32_matmul", "tf32_cudnn")},
}


def _columns_0024(dialect: str) -> dict[str, str]:
    return _columns_0014(dialect) | PROVENANCE_0024


# 0031: the GPUs as the job ran on them (issue 21): how many it needed, the quantization its weights were loaded
# with, the power limit asked for and the one set and read back for the window, and each GPU's own energy (a JSON
# list of {index, uuid, kwh}, as text so that CSV and Parquet carry it as one column on both databases).
def _columns_0031(dialect: str) -> dict[str, str]:
    gpu_energies = "CAST(m.gpu_energies AS TEXT)" if dialect == "postgresql" else "m.gpu_energies"
    return _columns_0024(dialect) | {
        "gpus": "j.gpus", "quantization_method": "j.quantization_method", "quantization_bits": "j.quantization_bits",
        "power_limit_w": "j.power_limit_w", "power_limit_set_w": "m.power_limit_set_w",
        "power_limit_read_w": "m.power_limit_read_w", "gpu_energies": gpu_energies,
    }


VERSIONS = {"v_runs": {
    "0007": lambda dialect: create_view("v_runs", _columns_0007(dialect), _body(NODE_LATEST_LOAD)),
    "0011": lambda dialect: create_view("v_runs", _columns_0011(dialect), _body(NODE_LATEST_LOAD)),
    "0014": lambda dialect: create_view("v_runs", _columns_0014(dialect), _body(LATEST_LOAD, f"{BASELINE}\n")),
    "0024": lambda dialect: create_view("v_runs", _columns_0024(dialect), _body(LATEST_LOAD, f"{BASELINE}\n")),
    "0031": lambda dialect: create_view("v_runs", _columns_0031(dialect), _body(LATEST_LOAD, f"{BASELINE}\n")),
}}
