"""sentence-similarity: embed both sentences of each pair with sentence-transformers, then their cosine
similarity (AI Energy Score: STS Benchmark, Sentence Compression, Phrase Similarity).

sentence-transformers is the library labs use for this task; `hub:` models load
with it (pooling and normalisation as the model's own configuration says,
remote code never). One batch of B pairs is one `encode` call over its 2 x B
sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.contract.tasks import TASKS
from worker.workloads._shared import PipelineWorkload, count_tokens, quiet
from worker.workloads.base import WorkDone

DECLARED = TASKS["sentence-similarity"]  # name, input kind, default params: worker.contract.tasks


class SentenceSimilarity(PipelineWorkload):
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.models.loading import load_for_task
        from worker.workloads._shared import merged

        settings = merged(self.task, self.default_params, params)
        with quiet():
            loaded = load_for_task(model, self.task, device, settings["dtype"])
        encoder = loaded.model
        encoder.wattsweep_provenance = loaded.provenance  # Hub commit, dtype, parameters: stored with the job
        return encoder

    def call(self, encoder: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkDone:
        import torch

        first = [q["sentence1"] for q in queries]
        second = [q["sentence2"] for q in queries]
        with torch.inference_mode():
            embeddings = encoder.encode(first + second, batch_size=2 * len(queries), convert_to_tensor=True,
                                        show_progress_bar=False)
            torch.nn.functional.cosine_similarity(embeddings[: len(queries)], embeddings[len(queries):]).tolist()
        return WorkDone(len(queries), input_tokens=count_tokens(encoder.tokenizer, first + second))


WORKLOAD = SentenceSimilarity()
