"""automatic-speech-recognition: transcribe each utterance with the transformers pipeline (AI Energy Score:
Whisper models on LibriSpeech, Common Voice and People's Speech).

Decoding is the pipeline's default, as AI Energy Score ran it (beam search with
5 beams for Whisper in this transformers version), and a model stops at its
end of transcript: speech of different lengths makes different amounts of
text, so output length is not fixed here (`fixed_length: true` fixes it at
`max_new_tokens`; AI Energy Score's energy_star runs it as text generation:
greedy, `num_beams: 1`, exactly 100 tokens). Work units: seconds of audio heard and tokens generated
(counted per step, once per query, not per beam). Audio is resampled to the
feature extractor's rate first (worker.data.audio), so the pipeline needs no
torchaudio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._decoding import record_decoding
from worker.workloads._shared import (
    PipelineWorkload,
    fixed_length_generation,
    generated,
    merged,
    num_beams,
    one_or_many,
)
from worker.workloads.base import WorkDone

DECLARED = TASKS["automatic-speech-recognition"]  # name, input kind, default params: worker.contract.tasks


class AutomaticSpeechRecognition(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        pipeline = super().load(model, device, params)
        settings = merged(self.task, self.default_params, params)
        record_decoding(pipeline, pipeline.model.generation_config, settings,
                        num_beams=settings["num_beams"] or num_beams(pipeline),
                        max_new_tokens=settings["max_new_tokens"], fixed_length=settings["fixed_length"])
        return pipeline

    def call(self, pipeline: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkDone:
        from worker.data.audio import duration_s, resample

        generate, counter = fixed_length_generation(pipeline, params)
        if not params["fixed_length"]:
            generate.pop("min_new_tokens")
        rate = pipeline.feature_extractor.sampling_rate
        # The pipeline takes the array out of the dict it is given: a fresh dict per call.
        inputs = [{"raw": resample(q["array"], q["sampling_rate"], rate), "sampling_rate": rate} for q in queries]
        pipeline(one_or_many(inputs), batch_size=batch_size, generate_kwargs=generate)
        return WorkDone(len(queries), audio_s=sum(duration_s(q) for q in queries),
                         **generated(counter, generate, len(queries)))


WORKLOAD = AutomaticSpeechRecognition()
