"""image-to-text: a fixed-length caption per image (the study: captioning models, 10 new tokens)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import (
    PipelineWorkload,
    fixed_length_generation,
    generated,
    one_or_many,
    resize_images,
    with_common,
)
from worker.workloads.base import WorkUnits


class ImageToText(PipelineWorkload):
    task = "image-to-text"
    input_kind = "image"
    default_params = with_common(max_new_tokens=10, measure_prefill=False, resize_px=None)

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        generate, counter = fixed_length_generation(pipeline, params)
        # This pipeline takes generation settings only inside generate_kwargs.
        pipeline(one_or_many(resize_images(queries, params["resize_px"])), batch_size=batch_size,
                 generate_kwargs=generate)
        return WorkUnits(len(queries), images=len(queries), **generated(counter, generate, len(queries)))


WORKLOAD = ImageToText()
