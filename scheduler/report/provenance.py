"""The report's provenance section: the sweep's carbon setting, imported files, the workers, and how each
figure was measured (which components were estimated). Plain data for templates/sections.html.j2."""

from __future__ import annotations

from typing import Any

from scheduler.report.data import ReportData
from scheduler.report.html_parts import Code, Estimated, fmt, table


def provenance_section(data: ReportData) -> dict[str, Any]:
    s = data.sweep
    if s["grid_intensity_g_per_kwh"] is not None:
        carbon = f"explicit grid intensity {s['grid_intensity_g_per_kwh']:g} g CO2e/kWh"
    elif s["country_iso_code"]:
        carbon = f"grid mix of {s['country_iso_code']}" + (f" / {s['region']}" if s["region"] else "")
    else:
        carbon = "as recorded per window (see below)"
    override = s.get("grid_intensity_override")
    section: dict[str, Any] = {"mode": s["mode"], "hardware_class": s["hardware_class"], "carbon": carbon,
                               "override": f"{override:g}" if override is not None else None,
                               "source_files": None, "workers": None}
    if s.get("source_files"):
        rows = [[Code(str(f.get("path"))), str(f.get("layout", "–")), fmt(f.get("rows")),
                 ", ".join(f.get("os") or []), ", ".join(f.get("python_version") or []),
                 ", ".join(f.get("codecarbon_version") or []), str(f.get("sha256", ""))[:12]]
                for f in s["source_files"] if isinstance(f, dict)]
        section["source_files"] = table(["file", "layout", "rows", "OS", "Python", "CodeCarbon", "SHA-256"], rows, {2})
    if data.workers:
        rows = []
        for w in data.workers:
            inv = w["inventory"] or {}
            gpu = inv.get("gpu") or {}
            versions = inv.get("versions") or {}
            rows.append([w["id"], w["device"], fmt(inv.get("cpu_model")), fmt(inv.get("cpu_count")),
                         fmt(inv.get("ram_total_gb")), fmt(gpu.get("name")) if gpu else "–",
                         fmt(gpu.get("driver")) if gpu else "–", fmt(inv.get("os")), fmt(inv.get("python")),
                         ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
        section["workers"] = table(["worker", "device", "CPU", "cores", "RAM GB", "GPU", "driver", "OS", "Python",
                                    "libraries"], rows, {3, 4})
    rows = [[p["worker_id"] or "–", fmt(p["cpu_model"]), fmt(p["gpu_model"]),
             _method(p["cpu_method"], p["cpu_method"] != "rapl"),
             _method(p["gpu_method"], p["gpu_method"] not in ("none", "nvml-energy-counter")),
             _method(p["ram_method"], True), fmt(p["codecarbon_version"]), fmt(p["tracking_mode"]),
             fmt(p["torch_version"]), fmt(p["transformers_version"]),
             _intensity(p["intensity_min"], p["intensity_max"]) + f" ({fmt(p['carbon_intensity_source'])})",
             fmt(p["runs"])] for p in data.provenance]
    section["measured"] = table(["worker", "CPU", "GPU", "CPU energy", "GPU energy", "RAM energy", "CodeCarbon",
                                 "tracking", "torch", "transformers", "g CO2e/kWh", "runs"], rows, {11})
    return section


def _intensity(low: float | None, high: float | None) -> str:
    """One figure when the windows agree (emissions / energy varies in the last digits), else the range."""
    if low is None or high is None or abs(high - low) <= 1e-6 * abs(high):
        return fmt(high, 4)
    return f"{fmt(low, 4)}–{fmt(high, 4)}"


def _method(name: str | None, estimated: bool) -> str | Estimated:
    if not name:
        return "–"
    return Estimated(f"{name} (estimated)") if estimated else name
