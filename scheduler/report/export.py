"""`wattsweep export`'s files: the flat runs view (v_runs), or the served runs' (v_serving), as CSV or Parquet,
written batch by batch.

The columns and their types come from db.results.views.VIEW_COLUMNS, so an
empty sweep still gets a file with the full header or schema. Heavy imports
(pyarrow) stay inside the functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from db.results.views import VIEW_COLUMNS

Batch = list[dict[str, Any]]


class ExportFileError(RuntimeError):
    """The output file could not be created (the message names it and why)."""


def write_runs_csv(handle: IO[str], batches: Iterable[Batch], view: str = "v_runs") -> int:
    """v_runs rows (or another view's: v_serving) as CSV into an open text file; returns the rows written."""
    import csv

    rows = 0
    writer = csv.DictWriter(handle, fieldnames=list(VIEW_COLUMNS[view]), lineterminator="\n")
    writer.writeheader()
    for batch in batches:
        writer.writerows(batch)
        rows += len(batch)
    return rows


def write_runs_parquet(out: Path, batches: Iterable[Batch], view: str = "v_runs") -> int:
    """v_runs rows (or another view's: v_serving) as a Parquet file typed after the view's columns; returns the
    number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import BigInteger, Boolean, DateTime, Float

    def arrow(sql_type):
        if isinstance(sql_type, BigInteger):
            return pa.int64()
        if isinstance(sql_type, Float):
            return pa.float64()
        if isinstance(sql_type, Boolean):
            return pa.bool_()
        if isinstance(sql_type, DateTime):
            return pa.timestamp("us", tz="UTC")
        return pa.string()

    schema = pa.schema([(name, arrow(t)) for name, t in VIEW_COLUMNS[view].items()])
    rows = 0
    try:
        writer = pq.ParquetWriter(str(out), schema)
    except OSError as error:
        raise ExportFileError(f"cannot write {out}: {error}") from error
    with writer:
        for batch in batches:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            rows += len(batch)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows
