"""What a job actually loaded: the Hub commit, the dtype of the weights, their quantization, the parameter count,
and the decoding its generation used.

Written by the worker right after the load window, so that every result says
which weights produced it (a `hub:` reference without `@revision` follows the
branch; the commit pins what was measured).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import Job


def record_provenance(session: Session, *, job_id: int, provenance: dict[str, Any] | None) -> None:
    """Store revision, dtype, num_parameters, quantization, decoding and torch's float32 numerics (keys of
    `provenance`; missing or None ones are left alone; False is stored: TF32 off is a fact)."""
    columns = {"revision": Job.model_revision, "dtype": Job.model_dtype, "num_parameters": Job.num_parameters,
               "decoding": Job.decoding, "float32_matmul_precision": Job.float32_matmul_precision,
               "tf32_matmul": Job.tf32_matmul, "tf32_cudnn": Job.tf32_cudnn,
               "quantization_method": Job.quantization_method, "quantization_bits": Job.quantization_bits}
    values = {columns[key].key: value for key, value in (provenance or {}).items()
              if key in columns and (value or value is False)}
    if values:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
