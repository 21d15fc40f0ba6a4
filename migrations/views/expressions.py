"""SQL expressions the result views share, on Postgres and SQLite alike."""

from __future__ import annotations

# Components not measured on the host: CPU unless RAPL, GPU when power-sampled (or unknown), RAM always.
CPU_ESTIMATED = "m.cpu_method <> 'rapl'"
GPU_ESTIMATED = "m.gpu_method NOT IN ('none', 'nvml-energy-counter')"


def estimated_components(cpu: str, gpu: str) -> str:
    """'cpu, gpu, ram' less the components whose condition is false: which figures are estimates."""
    return (f"(CASE WHEN {cpu} THEN 'cpu, ' ELSE '' END) || "
            f"(CASE WHEN {gpu} THEN 'gpu, ' ELSE '' END) || 'ram'")


def estimated_flags(column: str) -> str:
    """estimated_components over 0/1 flag columns: `column` formats each flag's name, e.g. 'max(k.{})'."""
    return estimated_components(f"{column.format('cpu_estimated')} = 1", f"{column.format('gpu_estimated')} = 1")


ESTIMATED_ROW = estimated_components(CPU_ESTIMATED, GPU_ESTIMATED)


def nulls_last(value: str, separator: str = ", ") -> str:
    """An ORDER BY that puts NULLs last on both databases (`separator`: 0009 wrapped its line)."""
    return f"CASE WHEN {value} IS NULL THEN 1 ELSE 0 END{separator}{value}"


def median(value: str, count: str, rank: str) -> str:
    """Interpolated median from a rank (row_number over sorted values, NULLs last) and the count of non-NULLs,
    like percentile_cont(0.5), which SQLite lacks."""
    return f"avg(CASE WHEN {rank} IN (({count} + 1) / 2, ({count} + 2) / 2) THEN {value} END)"


def version_of(dialect: str, library: str) -> str:
    """A library's version from the worker's inventory JSON."""
    if dialect == "postgresql":
        return f"(w.inventory -> 'versions' ->> '{library}')"
    return f"json_extract(w.inventory, '$.versions.{library}')"


def count_where(column: str, value: str) -> str:
    return f"sum(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END)"


def create_view(name: str, columns: dict[str, str], body: str) -> str:
    """CREATE VIEW with an explicit column list (the same on both databases) over `SELECT <columns> <body>`."""
    return f"CREATE VIEW {name} ({', '.join(columns)}) AS\nSELECT {', '.join(columns.values())}\n{body}"


# 0029: a window whose GPU energy is 0 (no energy counter, and no power reading: codecarbon issue 1316) holds no
# measurement; it is kept out of every figure and only counted (`excluded_runs`). Other unreliable windows are kept
# and counted (`unreliable_runs`): they are measurements, with a known limit.
def no_gpu_reading(flags: str = "m.flags") -> str:
    """True where the window's flags (comma-separated) name `gpu-energy-zero` (no other flag contains it); NULL
    where it has none, which CASE takes as false, without reading a string."""
    return f"{flags} LIKE '%gpu-energy-zero%'"


def has_gpu_reading(flags: str = "m.flags") -> str:
    """The WHERE condition of the windows kept."""
    return f"({flags} IS NULL OR {flags} NOT LIKE '%gpu-energy-zero%')"


def kept(expression: str, flags: str = "m.flags") -> str:
    """`expression`, or NULL for a window with no GPU reading (aggregates skip NULLs)."""
    return f"CASE WHEN {no_gpu_reading(flags)} THEN NULL ELSE {expression} END"


def excluded(flags: str = "m.flags") -> str:
    """1 for a window with no GPU reading, else 0."""
    return f"CASE WHEN {no_gpu_reading(flags)} THEN 1 ELSE 0 END"
