"""Every CodeCarbon setting wattsweep passes: no config file, no CODECARBON_* variable changes a figure.

CodeCarbon reads ~/.codecarbon.config, ./.codecarbon.config and every
`CODECARBON_*` variable for any setting its caller leaves out, and some it
reads even when given (a deprecated API token). `CODECARBON_PUE=1.2`
multiplies every energy; a cloud provider or an Electricity Maps token
changes the carbon intensity. So every keyword the tracker reads from its
configuration is passed here, with the value wattsweep means; the adapter
(worker.measure.codecarbon_adapter) makes the tracker with CodeCarbon's
external configuration read as empty, and checks the result.
"""

from __future__ import annotations

from typing import Any

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


def expected_held(values: dict[str, Any]) -> dict[str, Any]:
    """What a tracker made from `values` must hold (keyed by setting; the adapter knows where CodeCarbon keeps it)."""
    return {"pue": values["pue"], "wue": values["wue"], "force_cpu_power": None, "force_ram_power": None,
            "tracking_mode": "machine", "cloud_provider": None, "cloud_region": None,
            "rapl_include_dram": False, "rapl_prefer_psys": False,
            "force_carbon_intensity_g_co2e_kwh": values["force_carbon_intensity_g_co2e_kwh"],
            "country_iso_code": values["country_iso_code"]}
