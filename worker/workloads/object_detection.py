"""object-detection: boxes and labels per image (the study: DETR/YOLOS-style models on COCO, Visual Genome, ...)."""

from __future__ import annotations

from worker.workloads._shared import ImagePipelineWorkload


class ObjectDetection(ImagePipelineWorkload):
    task = "object-detection"


WORKLOAD = ObjectDetection()
