"""text-to-image: one image per prompt with a diffusers pipeline (the study: Stable Diffusion models).

Work is fixed by the number of denoising steps and the image size; both are
parameters, since they set the cost far more than the prompt does.
height/width None means the model's own default size (512 for SD 1.x, 64 for tiny).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import count_tokens, cut_words, merged, quiet, run_batches
from worker.workloads.base import WorkDone

DECLARED = TASKS["text-to-image"]  # name, input kind, default params: worker.contract.tasks


class TextToImage:
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.models.loading import load_for_task

        settings = merged(self.task, self.default_params, params)
        with quiet(diffusers=True):
            loaded = load_for_task(model, self.task, device, settings["dtype"])
        pipeline = loaded.model
        pipeline.set_progress_bar_config(disable=True)
        pipeline.wattsweep_provenance = loaded.provenance  # Hub commit, dtype, parameters: stored with the job
        return pipeline

    def run(self, pipeline: Any, queries: Sequence[str], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        settings = merged(self.task, self.default_params, params)
        queries = cut_words(queries, settings["max_input_words"])

        def one_batch(batch: list[str]) -> WorkDone:
            # guidance_scale None: the pipeline's own (turbo and LCM models expect little or none; AI Energy Score
            # passes none); diffusers takes it only where given.
            scale = settings["guidance_scale"]
            guidance = {} if scale is None else {"guidance_scale": float(scale)}
            result = pipeline(prompt=batch, num_inference_steps=int(settings["num_inference_steps"]),
                              height=settings["height"], width=settings["width"], **guidance)
            return WorkDone(len(batch), input_tokens=count_tokens(pipeline.tokenizer, batch),
                             images=len(result.images))

        with quiet(diffusers=True):
            return run_batches(one_batch, queries, batch_size)


WORKLOAD = TextToImage()
