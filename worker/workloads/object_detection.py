"""object-detection: boxes and labels per image (the study: DETR/YOLOS-style models on COCO, Visual Genome, ...)."""

from __future__ import annotations

from worker.contract.tasks import TASKS
from worker.workloads._shared import ImagePipelineWorkload

DECLARED = TASKS["object-detection"]  # name, input kind, default params: worker.contract.tasks


class ObjectDetection(ImagePipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params


WORKLOAD = ObjectDetection()
