"""image-classification: one label per image (the study: ImageNet, CIFAR-10, ...)."""

from __future__ import annotations

from worker.workloads._shared import ImagePipelineWorkload


class ImageClassification(ImagePipelineWorkload):
    task = "image-classification"


WORKLOAD = ImageClassification()
