"""object-detection: boxes and labels per image (the study: DETR/YOLOS-style models on COCO, Visual Genome, ...)."""

from __future__ import annotations

from typing import Any

from worker.workloads._shared import PipelineWorkload, resize_images, with_common
from worker.workloads.base import WorkUnits


class ObjectDetection(PipelineWorkload):
    task = "object-detection"
    input_kind = "image"
    default_params = with_common(resize_px=None)  # N or [width, height]: resize inputs first (None: as they come)

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        pipeline(resize_images(queries, params["resize_px"]), batch_size=batch_size)
        return WorkUnits(len(queries), images=len(queries))


WORKLOAD = ObjectDetection()
