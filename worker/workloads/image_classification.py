"""image-classification: one label per image (the study: ImageNet, CIFAR-10, ...)."""

from __future__ import annotations

from worker.contract.tasks import TASKS
from worker.workloads._shared import ImagePipelineWorkload

DECLARED = TASKS["image-classification"]  # name, input kind, default params: worker.contract.tasks


class ImageClassification(ImagePipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params


WORKLOAD = ImageClassification()
