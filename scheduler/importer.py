"""Reading CodeCarbon CSV files (2.x and 3.x) for `wattsweep import codecarbon`.

Two layouts: `emissions.csv` (one row per tracker run: each row is one query
run) and the per-task files CodeCarbon writes in task mode
(`emissions_<experiment>_<run id>.csv`, a `task_name` column): rows whose
task name mentions "load" (the study's "load model") become load windows, the
others ("query model") query runs. `project_name` names the model unless
--model is given.

Every file is read completely before anything is written: the first problem
(file, line, column) stops the import. Energies must be numbers >= 0.
CodeCarbon does not record how it measured each component, so imported
windows say "unknown" (shown as estimated), never a measurement method.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REQUIRED = ("duration", "emissions", "energy_consumed")
ENERGY = ("energy_consumed", "cpu_energy", "gpu_energy", "ram_energy")
NUMBERS = ("duration", "emissions", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy",
           "energy_consumed", "cpu_count", "gpu_count", "ram_total_size", "cpu_utilization_percent",
           "gpu_utilization_percent", "ram_utilization_percent")
NOT_NEGATIVE = ENERGY + ("duration", "emissions")


class ImportFileError(ValueError):
    """A file that cannot be imported; the message names the file, line and column."""


@dataclass(frozen=True)
class ImportedWindow:
    model: str
    phase: str  # load | query
    measurement: dict[str, Any]  # Measurement columns (without ids, work units or per-query figures)


@dataclass(frozen=True)
class ImportedFile:
    path: str
    sha256: str
    windows: list[ImportedWindow]
    layout: str  # emissions | tasks
    software: dict[str, Any]  # os, python, codecarbon versions seen in the file


def read_files(paths: list[Path], *, model: str | None = None) -> list[ImportedFile]:
    return [read_file(path, model=model) for path in paths]


def read_file(path: Path, *, model: str | None = None) -> ImportedFile:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFileError(f"{path}: cannot read ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path}: not UTF-8 text (byte {error.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ImportFileError(f"{path}: line 1: empty file, expected a CodeCarbon CSV header")
    header = [h.strip() for h in header]
    for name in REQUIRED:
        if name not in header:
            raise ImportFileError(f"{path}: line 1: no column {name!r}; is this a CodeCarbon emissions file? "
                                  f"(columns: {', '.join(header[:8])}...)")
    if model is None and "project_name" not in header:
        raise ImportFileError(f"{path}: line 1: no project_name column to name the model; give --model")
    index = {name: i for i, name in enumerate(header)}
    windows, seen = [], {"os": set(), "python_version": set(), "codecarbon_version": set()}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise ImportFileError(f"{path}: line {line}: {len(values)} fields, the header has {len(header)}")
        row = dict(zip(header, values, strict=True))
        windows.append(_window(path, line, row, index, model))
        for key, found in seen.items():
            if row.get(key):
                found.add(row[key])
    return ImportedFile(str(path), hashlib.sha256(raw).hexdigest(), windows,
                        "tasks" if "task_name" in header else "emissions",
                        {key: sorted(values) for key, values in seen.items()})


def _number(path: Path, line: int, index: dict[str, int], row: dict[str, str], name: str) -> float | None:
    value = row.get(name, "").strip()
    if value == "":
        if name in REQUIRED:
            raise ImportFileError(f"{path}: line {line}, column {index[name] + 1} ({name}): empty")
        return None
    try:
        number = float(value)
    except ValueError:
        raise ImportFileError(f"{path}: line {line}, column {index[name] + 1} ({name}): not a number: "
                              f"{value!r}") from None
    if not math.isfinite(number):
        raise ImportFileError(f"{path}: line {line}, column {index[name] + 1} ({name}): not a finite number: "
                              f"{value!r}")
    if name in NOT_NEGATIVE and number < 0:
        what = "energy" if name in ENERGY else name
        raise ImportFileError(f"{path}: line {line}, column {index[name] + 1} ({name}): negative {what} {value}")
    return number


def _text(row: dict[str, str], name: str, limit: int) -> str | None:
    value = (row.get(name) or "").strip()
    return value[:limit] if value and value.lower() != "nan" else None


def _timestamp(path: Path, line: int, index: dict[str, int], row: dict[str, str]) -> datetime | None:
    value = (row.get("timestamp") or "").strip()
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ImportFileError(f"{path}: line {line}, column {index['timestamp'] + 1} (timestamp): not an ISO "
                              f"date and time: {value!r}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _window(path: Path, line: int, row: dict[str, str], index: dict[str, int], model: str | None) -> ImportedWindow:
    n = {name: _number(path, line, index, row, name) for name in NUMBERS}
    name = model or (row.get("project_name") or "").strip()
    if not name:
        raise ImportFileError(f"{path}: line {line}, column {index['project_name'] + 1} (project_name): empty; "
                              "give --model")
    task_name = (row.get("task_name") or "").strip().lower()
    phase = "load" if "load" in task_name else "query"
    ended_at = _timestamp(path, line, index, row)  # CodeCarbon stamps a row when the window ends
    started_at = ended_at - timedelta(seconds=n["duration"]) if ended_at else None
    energy = n["energy_consumed"]
    gpu_energy, gpu_count = n["gpu_energy"] or 0.0, n["gpu_count"]
    country = _text(row, "country_iso_code", 3)
    return ImportedWindow(name[:300], phase, {
        "started_at": started_at, "ended_at": ended_at, "duration_s": n["duration"], "energy_kwh": energy,
        "cpu_energy_kwh": n["cpu_energy"] or 0.0, "gpu_energy_kwh": gpu_energy,
        "ram_energy_kwh": n["ram_energy"] or 0.0,
        "emissions_kg": n["emissions"], "cpu_power_w": n["cpu_power"], "gpu_power_w": n["gpu_power"],
        "ram_power_w": n["ram_power"], "cpu_utilization_pct": n["cpu_utilization_percent"],
        "gpu_utilization_pct": n["gpu_utilization_percent"], "ram_utilization_pct": n["ram_utilization_percent"],
        "cpu_model": _text(row, "cpu_model", 200), "cpu_count": int(n["cpu_count"]) if n["cpu_count"] else None,
        "gpu_model": _text(row, "gpu_model", 200), "gpu_count": int(gpu_count) if gpu_count is not None else None,
        "ram_total_gb": n["ram_total_size"], "cpu_method": "unknown",
        "gpu_method": "none" if gpu_energy == 0 and not gpu_count else "unknown",
        "ram_method": "codecarbon-estimate", "tracking_mode": _text(row, "tracking_mode", 10) or "unknown",
        "codecarbon_version": _text(row, "codecarbon_version", 20) or "unknown",
        "country_iso_code": country.upper() if country else None, "region": _text(row, "region", 100),
        "carbon_intensity_g_per_kwh": n["emissions"] * 1000 / energy if energy > 0 else None,
        "carbon_intensity_source": "imported",
    })


def hardware_class_of(files: list[ImportedFile]) -> str:
    """A hardware class named after the first window's GPU (or CPU): `1 x NVIDIA A100-SXM4-80GB` -> nvidia-a100-..."""
    for f in files:
        for w in f.windows:
            m = w.measurement
            name = m["gpu_model"] if m["gpu_count"] and m["gpu_model"] else m["cpu_model"]
            if name:
                slug = re.sub(r"^\d+\s*x\s*", "", name.lower())
                return re.sub(r"[^a-z0-9.]+", "-", slug).strip("-")[:100] or "imported"
    return "imported"
