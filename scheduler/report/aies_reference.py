"""AI Energy Score's published per-task results (the leaderboard's CSV files) read as a reference set.

The leaderboard publishes one CSV per task (AIEnergyScore/2024_Leaderboard space, `data/energy/<task>.csv`,
the files a user downloads): a row per model with `model` and `total_gpu_energy` (GPU energy per 1,000
queries, kWh: the leaderboard shows it x 1,000 as Wh), and, where present, `class` (A, B, C: text generation)
and `energy_score` (the stars it published). The task is the file's name (`text_generation.csv`) unless given.
Stars a lab computes against these rows are the stars the leaderboard would give (same rule, same reference
set). Pure: text in, rows or one-line errors out; nothing is stored here (db.results.references does).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

# The leaderboard's task file names -> wattsweep's task names.
AIES_TASKS: dict[str, str] = {
    "text_generation": "text-generation", "reasoning": "reasoning", "summarization": "summarization",
    "extractive_qa": "question-answering", "text_classification": "text-classification",
    "sentence_similarity": "sentence-similarity", "image_classification": "image-classification",
    "object_detection": "object-detection", "asr": "automatic-speech-recognition",
    "image_generation": "text-to-image", "image_captioning": "image-to-text",
}
REQUIRED = ("model", "total_gpu_energy")
MAX_ROWS = 10_000
MAX_KWH_PER_1K = 1e6  # far above any published figure: a bigger one is a unit mix-up


class ReferenceFileError(ValueError):
    """A leaderboard file that cannot be a reference set; the message is one line naming the file."""


@dataclass(frozen=True)
class ReferenceRow:
    task: str
    model: str
    gpu_kwh_per_1k: float
    size_class: str | None
    published_stars: int | None


def task_of(path: Path, task: str | None) -> str:
    """The wattsweep task of a leaderboard file: `task` (wattsweep's or the leaderboard's name) or its stem."""
    name = task or path.stem
    if name in AIES_TASKS.values():
        return name
    if name in AIES_TASKS:
        return AIES_TASKS[name]
    raise ReferenceFileError(f"{path.name}: unknown AI Energy Score task {name!r}; name the file after one of "
                             f"{', '.join(AIES_TASKS)} or pass --task")


def read_reference(path: Path, text: str, task: str | None = None) -> list[ReferenceRow]:
    """The rows of one leaderboard CSV; ReferenceFileError (one line) for anything it cannot be."""
    task = task_of(path, task)
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ReferenceFileError(f"{path.name}: missing column(s) {', '.join(missing)}; the leaderboard's per-task "
                                 f"CSV has model, total_gpu_energy (and class, energy_score)")
    rows: list[ReferenceRow] = []
    for line, raw in enumerate(reader, start=2):
        record = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not record["model"]:
            raise ReferenceFileError(f"{path.name}:{line}: empty model")
        rows.append(ReferenceRow(task, record["model"], _energy(path, line, record["total_gpu_energy"]),
                                 _klass(path, line, record.get("class", ""), task),
                                 _stars(path, line, record.get("energy_score", ""))))
        if len(rows) > MAX_ROWS:
            raise ReferenceFileError(f"{path.name}: more than {MAX_ROWS:,} rows")
    if not rows:
        raise ReferenceFileError(f"{path.name}: no rows")
    seen: set[str] = set()
    for row in rows:
        if row.model in seen:
            raise ReferenceFileError(f"{path.name}: model {row.model} appears twice")
        seen.add(row.model)
    return rows


def source_of(path: Path, text: str) -> str:
    return f"{path.name} sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _energy(path: Path, line: int, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ReferenceFileError(f"{path.name}:{line}: total_gpu_energy {value!r} is not a number") from None
    if not math.isfinite(number) or not 0 < number <= MAX_KWH_PER_1K:
        raise ReferenceFileError(f"{path.name}:{line}: total_gpu_energy {value!r}: expected kWh per 1,000 "
                                 "queries above 0")
    return number


def _klass(path: Path, line: int, value: str, task: str) -> str | None:
    letter = value.upper().removeprefix("CLASS").strip()
    if not letter:
        return None
    if letter not in ("A", "B", "C"):
        raise ReferenceFileError(f"{path.name}:{line}: class {value!r}: expected A, B or C")
    return letter


def _stars(path: Path, line: int, value: str) -> int | None:
    if not value:
        return None
    try:
        stars = int(float(value))
    except ValueError:
        stars = 0
    if not 1 <= stars <= 5:
        raise ReferenceFileError(f"{path.name}:{line}: energy_score {value!r}: expected 1 to 5 stars")
    return stars
