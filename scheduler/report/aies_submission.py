"""A submission AI Energy Score can read: `benchmark_report.json` and `GPU_ENERGY_WH.txt` for one model's cell.

AI Energy Score's batch runner reads a run's `benchmark_report.json` in its v2 harness's layout (batch_runner.py;
results_aggregator.py takes `summary` and `energy.gpu_energy_wh`, and computes Wh per 1,000 queries as
gpu_energy_wh / successful_prompts x 1,000); summarize_gpu_wh.py recognises that layout by `energy.gpu_energy_wh`
and writes its total, in Wh with two decimals, to `GPU_ENERGY_WH.txt`. One report stands for one run of N
queries: here the mean run of the cell (the leaderboard's figure is the mean of its 10 runs), normalised to
the runs' query count, with every run's figure under `wattsweep` so that nothing is hidden. Pure: run rows
(the v_runs view) in, file contents out.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class SubmissionError(ValueError):
    """Nothing a submission could honestly be made of; the message is one line."""


@dataclass(frozen=True)
class Submission:
    report: dict[str, Any]
    gpu_energy_wh: float

    def files(self) -> dict[str, str]:
        """File name -> text, as AI Energy Score's tools write and read them."""
        summary = {"units": "Wh", "total": round(self.gpu_energy_wh, 2), "format": "ai_energy_benchmarks",
                   "preprocess_wh": 0.0, "prefill_wh": 0.0, "decode_wh": round(self.gpu_energy_wh, 2)}
        return {"benchmark_report.json": json.dumps(self.report, indent=2, default=str) + "\n",
                "GPU_ENERGY_WH.txt": f"{self.gpu_energy_wh:.2f}\n",
                "GPU_ENERGY_SUMMARY.json": json.dumps(summary, indent=2) + "\n"}


def build_submission(runs: Sequence[Mapping[str, Any]], *, sweep: str, protocol: str) -> Submission:
    """The submission of one cell from its done runs (v_runs rows); SubmissionError if there is nothing to send."""
    done = [r for r in runs if r["run_status"] == "done" and r.get("gpu_energy_kwh") is not None
            and not r.get("is_unreliable") and r.get("n_queries")]
    if not done:
        raise SubmissionError("no measured run to submit")
    if all(float(r["gpu_energy_kwh"]) <= 0 for r in done):
        raise SubmissionError("no GPU energy measured (a CPU run?): AI Energy Score takes GPU energy only")
    wh_per_1k = [float(r["gpu_energy_kwh"]) * 1e6 / int(r["n_queries"]) for r in done]
    queries = round(statistics.fmean(int(r["n_queries"]) for r in done))
    gpu_wh = statistics.fmean(wh_per_1k) * queries / 1000
    duration = statistics.fmean(float(r["duration_s"] or 0) for r in done)
    prompt_tokens = _mean(done, "input_tokens")
    completion_tokens = _mean(done, "output_tokens")
    first = done[0]
    report = {
        "summary": {
            "total_prompts": queries, "successful_prompts": queries, "failed_prompts": 0,
            "total_duration_seconds": duration, "avg_latency_seconds": duration / queries,
            "total_tokens": prompt_tokens + completion_tokens, "total_prompt_tokens": prompt_tokens,
            "total_completion_tokens": completion_tokens,
            "throughput_tokens_per_second": completion_tokens / duration if duration else 0,
        },
        "energy": {"gpu_energy_wh": gpu_wh, "emissions_g_co2eq": _mean(done, "emissions_kg", int_=False) * 1000},
        "wattsweep": {
            "sweep": sweep, "protocol": protocol, "task": first["task"], "model": first["model"],
            "model_revision": first.get("model_revision"), "model_dtype": first.get("model_dtype"),
            "cell": first.get("cell_key") or "", "hardware_class": first.get("hardware_class"),
            "gpu_model": first.get("gpu_model"), "gpu_count": first.get("gpu_count"),
            "gpu_method": first.get("gpu_method"), "codecarbon_version": first.get("codecarbon_version"),
            "runs": len(done), "gpu_wh_per_1k_queries": statistics.fmean(wh_per_1k),
            "gpu_wh_per_1k_queries_std": statistics.stdev(wh_per_1k) if len(wh_per_1k) > 1 else None,
            "gpu_wh_per_run": [float(r["gpu_energy_kwh"]) * 1000 for r in done],
            "datasets": sorted({r["dataset"] for r in done}),
        },
    }
    return Submission(report, gpu_wh)


def _mean(rows: Sequence[Mapping[str, Any]], column: str, int_: bool = True) -> Any:
    value = statistics.fmean(float(r.get(column) or 0) for r in rows)
    return round(value) if int_ else value
