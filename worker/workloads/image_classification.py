"""image-classification: one label per image (the study: ImageNet, CIFAR-10, ...)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, resize_images, with_common
from worker.workloads.base import WorkUnits


class ImageClassification(PipelineWorkload):
    task = "image-classification"
    input_kind = "image"
    default_params = with_common(resize_px=None)  # N or [width, height]: resize inputs first (None: as they come)

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        pipeline(resize_images(queries, params["resize_px"]), batch_size=batch_size)
        return WorkUnits(len(queries), images=len(queries))


WORKLOAD = ImageClassification()
