"""image-to-text: a fixed-length caption per image (the study: captioning models, 10 new tokens).

transformers 5 has no image-to-text pipeline: the model's own `generate` runs on the image processor's pixels,
with the settings the pipeline used (worker.workloads._generate).
"""

from __future__ import annotations

from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._generate import IMAGE_TO_TEXT_DEFAULTS, GenerateWorkload, encode_images, generate
from worker.workloads._shared import (
    fixed_length_generation,
    generated,
    resize_images,
)
from worker.workloads.base import WorkDone

DECLARED = TASKS["image-to-text"]  # name, input kind, default params: worker.contract.tasks


class ImageToText(GenerateWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    task_key, generation_defaults = "image-to-text", IMAGE_TO_TEXT_DEFAULTS  # the dropped pipeline's settings

    def call(self, generator: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkDone:
        length, counter = fixed_length_generation(generator, params)
        generate(generator, encode_images(generator, resize_images(queries, params["resize_px"])), length)
        return WorkDone(len(queries), images=len(queries), **generated(counter, length, len(queries)))


WORKLOAD = ImageToText()
