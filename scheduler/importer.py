"""Reading CodeCarbon CSV files (2.x and 3.x) for `wattsweep import codecarbon`.

Two layouts: `emissions.csv` (one row per tracker run: each row is one query
run) and the per-task files CodeCarbon writes in task mode
(`emissions_<experiment>_<run id>.csv`, a `task_name` column): rows whose
task name mentions "load" (the study's "load model") become load windows, the
others ("query model") query runs. `project_name` names the model unless
--model is given.

Every file is read completely before anything is written: the first problem
(file, line, column) stops the import. Numbers must be finite and in range
(energies >= 0; LIMITS), names fit their columns. Timestamps are read as
ISO 8601 dates however spreadsheets write them (`T` or a space, a zone or
none = UTC, fractions, an hour without its leading zero, AM/PM); a date
whose day and month could be swapped (03/04/2024) is refused, naming the line.
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
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from scheduler.import_physics import row_problem

REQUIRED = ("duration", "emissions", "energy_consumed")
ENERGY = ("energy_consumed", "cpu_energy", "gpu_energy", "ram_energy")
NUMBERS = ("duration", "emissions", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy",
           "energy_consumed", "cpu_count", "gpu_count", "ram_total_size", "cpu_utilization_percent",
           "gpu_utilization_percent", "ram_utilization_percent")
NOT_NEGATIVE = NUMBERS  # no count, size, power, share, energy or time below zero
# Largest believable value per column (inclusive); anything beyond is a corrupted file, not a measurement.
LIMITS = {"duration": 366 * 86400.0, "emissions": 1e9, "cpu_count": 1e6, "gpu_count": 1e5, "ram_total_size": 1e7,
          **{name: 1e9 for name in ENERGY}, **{f"{c}_power": 1e8 for c in ("cpu", "gpu", "ram")},
          **{f"{c}_utilization_percent": 1e4 for c in ("cpu", "gpu", "ram")}}
WHOLE = ("cpu_count", "gpu_count")
MODEL_CHARS = 300  # jobs.model is VARCHAR(300)
YEARS = (2000, 2100)  # CodeCarbon is from 2020: a year outside these is a damaged cell
_STAMP = re.compile(
    r"^(?P<y>\d{4})[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:(?:T|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:\s*(?P<ampm>[AaPp][Mm]))?)?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$")
_DAY_MONTH = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")


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


def options_problem(*, sweep: str | None, dataset: str, hardware_class: str | None) -> str | None:
    """What is wrong with the names given on the command line (they become sweeps.name, runs.dataset, ...)."""
    for option, value, limit in (("--sweep", sweep, 200), ("--dataset", dataset, 300),
                                 ("--hardware-class", hardware_class, 100)):
        if value is None:
            continue
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
        if not value.strip():
            return f"{option} {shown}: empty"
        if len(value) > limit:
            return f"{option} {shown}: {len(value):,} characters; the limit is {limit}"
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return f"{option} {shown}: contains a control character"
    return None


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
    if model is not None and not model.strip():
        raise ImportFileError("--model '': empty; give the model's name, or leave --model out to use project_name")
    if model is not None and len(model.strip()) > MODEL_CHARS:
        raise ImportFileError(f"--model: {len(model):,} characters; the limit is {MODEL_CHARS}")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_rows(path, raw, reader, model)
    except csv.Error as error:  # a field over csv's limit (131,072 characters), a NUL byte, ...
        raise ImportFileError(f"{path}: line {reader.line_num}: not a readable CSV row: {error}") from None


def _read_rows(path: Path, raw: bytes, reader, model: str | None) -> ImportedFile:
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ImportFileError(f"{path}: line 1: empty file, expected a CodeCarbon CSV header")
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if header.count(h) > 1 and h})
    if twice:  # csv.DictReader-style reading would keep the last one silently: which was meant?
        raise ImportFileError(f"{path}: line 1: column {twice[0]!r} appears {header.count(twice[0])} times")
    for name in REQUIRED:
        if name not in header:
            raise ImportFileError(f"{path}: line 1: no column {name!r}; is this a CodeCarbon emissions file? "
                                  f"(columns: {', '.join(h[:40] for h in header[:8])}...)")
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
                found.add(row[key][:100])
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
    where = f"{path}: line {line}, column {index[name] + 1} ({name})"
    if name in NOT_NEGATIVE and number < 0:
        what = "energy" if name in ENERGY else name
        raise ImportFileError(f"{where}: negative {what} {value}")
    limit = LIMITS.get(name)
    if limit is not None and not -limit <= number <= limit:
        raise ImportFileError(f"{where}: {value} is out of range; the limit is {limit:g}")
    if name in WHOLE and number != int(number):
        raise ImportFileError(f"{where}: {value} is not a whole number")
    return number


def _text(row: dict[str, str], name: str, limit: int) -> str | None:
    """A free-text column cut to its database column's size (a CPU model name is notes, not a key)."""
    value = " ".join((row.get(name) or "").split())
    return value[:limit] if value and value.lower() != "nan" else None


def _timestamp(path: Path, line: int, index: dict[str, int], row: dict[str, str]) -> datetime | None:
    value = (row.get("timestamp") or "").strip()
    if not value:
        return None
    where = f"{path}: line {line}, column {index['timestamp'] + 1} (timestamp)"
    shown = repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    if _DAY_MONTH.match(value):
        raise ImportFileError(f"{where}: {shown} is ambiguous (day and month could be swapped); write dates as "
                              "YYYY-MM-DD")
    try:
        stamp = parse_timestamp(value)
    except ValueError as error:
        raise ImportFileError(f"{where}: {error}: {shown}") from None
    if not YEARS[0] <= stamp.year < YEARS[1]:
        raise ImportFileError(f"{where}: year {stamp.year} is outside {YEARS[0]}-{YEARS[1] - 1}: {shown}")
    return stamp.astimezone(UTC)  # stored as UTC: SQLite keeps no zone, and every other window is UTC


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 date and time as people and spreadsheets write it; no zone means UTC. ValueError otherwise."""
    match = _STAMP.match(value.strip())
    if not match:
        raise ValueError("not an ISO date and time (YYYY-MM-DD HH:MM:SS, optionally with T, a zone, fractions)")
    part = {k: v for k, v in match.groupdict().items() if v is not None}
    hour = int(part.get("h", 0))
    if "ampm" in part:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {part['ampm'].upper()}")
        hour = hour % 12 + (12 if part["ampm"].lower() == "pm" else 0)
    fraction = (part.get("f", "") + "000000")[:6]
    zone = part.get("zone", "Z")
    if zone in ("Z", "UTC", "GMT"):
        tz = UTC
    else:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        if offset >= timedelta(hours=24):
            raise ValueError(f"zone {zone} is not an offset from UTC")
        tz = timezone(offset if zone[0] == "+" else -offset)
    try:
        return datetime(int(part["y"]), int(part["mo"]), int(part["d"]), hour, int(part.get("mi", 0)),
                        int(part.get("s", 0)), int(fraction), tzinfo=tz)
    except ValueError as error:  # 31 February, hour 25, ...
        raise ValueError(f"not a real date and time ({error})") from None


def _window(path: Path, line: int, row: dict[str, str], index: dict[str, int], model: str | None) -> ImportedWindow:
    n = {name: _number(path, line, index, row, name) for name in NUMBERS}
    name = (model or row.get("project_name") or "").strip()
    if not name:
        raise ImportFileError(f"{path}: line {line}, column {index['project_name'] + 1} (project_name): empty; "
                              "give --model")
    if len(name) > MODEL_CHARS:
        raise ImportFileError(f"{path}: line {line}, column {index['project_name'] + 1} (project_name): "
                              f"{len(name):,} characters; the limit is {MODEL_CHARS} (or give --model)")
    task_name = (row.get("task_name") or "").strip().lower()
    phase = "load" if "load" in task_name else "query"
    ended_at = _timestamp(path, line, index, row)  # CodeCarbon stamps a row when the window ends
    problem = row_problem(n, ended_at)
    if problem is not None:
        column, why = problem
        raise ImportFileError(f"{path}: line {line}, column {index[column] + 1} ({column}): {why}")
    started_at = ended_at - timedelta(seconds=n["duration"]) if ended_at else None
    energy = n["energy_consumed"]
    gpu_energy, gpu_count = n["gpu_energy"] or 0.0, n["gpu_count"]
    country = _text(row, "country_iso_code", 3)
    return ImportedWindow(name, phase, {
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
        "carbon_intensity_g_per_kwh": _intensity(n["emissions"], energy),
        "carbon_intensity_source": "imported",
    })


def _intensity(emissions_kg: float, energy_kwh: float) -> float | None:
    intensity = emissions_kg * 1000 / energy_kwh if energy_kwh > 0 else None
    return intensity if intensity is not None and math.isfinite(intensity) else None


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
