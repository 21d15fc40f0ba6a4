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
