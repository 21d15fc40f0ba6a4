"""A CodeCarbon tracker whose every setting is ours: no config file, no CODECARBON_* variable changes a figure.

CodeCarbon reads ~/.codecarbon.config, ./.codecarbon.config and every
`CODECARBON_*` variable for any setting its caller leaves out, and some it
reads even when given (a deprecated API token). `CODECARBON_PUE=1.2`
multiplies every energy; a cloud provider or an Electricity Maps token
changes the carbon intensity. So the tracker is made with every setting
passed and with CodeCarbon's external configuration read as empty, and the
result is checked. Also here: the two repairs the meter needs on CodeCarbon's
hardware objects (removing GPUs from a CPU worker's tracker; the TDP its CPU
estimate used, and whether that was its generic fallback).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any
from unittest import mock

PROJECT = "wattsweep"


def explicit_settings(*, country_iso_code: str | None, region: str | None, grid_intensity_g_per_kwh: float | None,
                      gpu_ids: list[int] | None, pue: float, output_dir: str) -> dict[str, Any]:
    """Every keyword OfflineEmissionsTracker reads from its configuration, with the value wattsweep means."""
    return dict(
        project_name=PROJECT, experiment_name=PROJECT, experiment_id="00000000-0000-0000-0000-000000000000",
        measure_power_secs=1.0,  # its periodic scheduler is stopped in task mode; windows are read at their ends
        api_call_interval=-1, api_endpoint=None, api_key=None, emissions_endpoint=None,
        output_dir=output_dir, output_file="emissions.csv", output_methods=[], output_handlers=[],
        logging_logger=None, prometheus_url=None, on_csv_write="append", logger_preamble="",
        electricitymaps_api_token=None,
        gpu_ids=gpu_ids, tracking_mode="machine", log_level="warning",  # warnings are captured per window
        force_cpu_power=None, force_ram_power=None, force_mode_cpu_load=False,
        rapl_include_dram=False, rapl_prefer_psys=False,
        pue=pue, wue=0.0, allow_multiple_runs=True,  # several pinned workers share one host
        force_carbon_intensity_g_co2e_kwh=grid_intensity_g_per_kwh,
        country_iso_code=country_iso_code, region=region,
        cloud_provider=None, cloud_region=None, country_2letter_iso_code=None,
    )


def make_tracker(**settings) -> Any:
    from codecarbon import OfflineEmissionsTracker, emissions_tracker

    from worker.measure.codecarbon_log import quiet_console

    logging.getLogger("codecarbon").setLevel(logging.WARNING)  # its INFO chatter off, its warnings captured
    quiet_console()
    values = explicit_settings(**settings)
    with mock.patch.object(emissions_tracker, "get_hierarchical_config", dict):  # files and CODECARBON_*: unread
        tracker = OfflineEmissionsTracker(**values)
    tracker._electricitymaps_api_token = None  # a deprecated co2_signal token would be read even so
    _check(tracker, values)
    return tracker


def _check(tracker: Any, values: dict[str, Any]) -> None:
    """The tracker holds what was passed (a CodeCarbon that read its configuration elsewhere would differ)."""
    expected = {"_pue": values["pue"], "_wue": values["wue"], "_force_cpu_power": None, "_force_ram_power": None,
                "_tracking_mode": "machine", "_cloud_provider": None, "_cloud_region": None,
                "_rapl_include_dram": False, "_rapl_prefer_psys": False,
                "force_carbon_intensity_g_co2e_kwh": values["force_carbon_intensity_g_co2e_kwh"],
                "_country_iso_code": values["country_iso_code"]}
    wrong = {name: getattr(tracker, name, "?") for name, value in expected.items()
             if getattr(tracker, name, "?") != value}
    if wrong:
        raise RuntimeError(f"CodeCarbon did not take wattsweep's settings: {wrong}")


def without_gpus(tracker: Any) -> None:
    """A CPU worker's tracker meters no GPU, whatever CodeCarbon's hardware cache handed it."""
    tracker._hardware = [h for h in tracker._hardware if type(h).__name__ != "GPU"]
    tracker._conf["gpu_count"], tracker._conf["gpu_model"], tracker._conf["gpu_ids"] = 0, "", []


def cpu_tdp(tracker: Any) -> tuple[float | None, bool]:
    """(TDP in W that CodeCarbon's CPU estimate uses, whether it is a generic fallback); (None, False) with RAPL.

    CodeCarbon falls back to 85 W, or 4 W per thread, for a CPU its table
    does not list, saying so only in a warning at the first tracker's
    set-up; its hardware cache forgets the "generic" mark. So the table is
    asked again (once per process).
    """
    for hardware in tracker._hardware:
        if type(hardware).__name__ != "CPU":
            continue
        if getattr(hardware, "_mode", None) not in ("cpu_load", "constant"):
            return None, False  # measured (RAPL, ...): no TDP enters the figure
        tdp = getattr(hardware, "_tdp", None)
        generic = bool(getattr(hardware, "_is_generic_tdp", False)) or not _listed(getattr(hardware, "_model", None))
        return (float(tdp) if tdp is not None else None), generic
    return None, False


@lru_cache(maxsize=8)
def _listed(model: str | None) -> bool:
    """Whether CodeCarbon's CPU table has a TDP for this model."""
    if not model or model == "Unknown":
        return False
    try:
        from codecarbon.core import cpu
        from codecarbon.core.hardware_cache import get_cached_tdp

        return get_cached_tdp(cpu)._get_cpu_power_from_registry(model) is not None
    except Exception:  # CodeCarbon's internals moved: say generic rather than pass an estimate as known
        return False
