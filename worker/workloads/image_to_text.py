"""image-to-text: a fixed-length caption per image (the study: captioning models, 10 new tokens)."""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import (
    PipelineWorkload,
    fixed_length_generation,
    generated,
    one_or_many,
    resize_images,
)
from worker.workloads.base import WorkDone

DECLARED = TASKS["image-to-text"]  # name, input kind, default params: worker.contract.tasks


class ImageToText(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkDone:
        generate, counter = fixed_length_generation(pipeline, params)
        # This pipeline takes generation settings only inside generate_kwargs.
        pipeline(one_or_many(resize_images(queries, params["resize_px"])), batch_size=batch_size,
                 generate_kwargs=generate)
        return WorkDone(len(queries), images=len(queries), **generated(counter, generate, len(queries)))


WORKLOAD = ImageToText()
