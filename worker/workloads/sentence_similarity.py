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

from worker.workloads._shared import PipelineWorkload, count_tokens, quiet, with_common
from worker.workloads.base import WorkUnits


class SentenceSimilarity(PipelineWorkload):
    task = "sentence-similarity"
    input_kind = "pair"
    default_params = with_common()

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.models.loading import load_for_task
        from worker.workloads._shared import merged

        settings = merged(self.task, self.default_params, params)
        with quiet():
            loaded = load_for_task(model, self.task, device, settings["dtype"])
        encoder = loaded.model
        encoder.wattsweep_provenance = loaded.provenance  # Hub commit, dtype, parameters: stored with the job
        return encoder

    def call(self, encoder: Any, queries: list[dict], batch_size: int, params: dict[str, Any]) -> WorkUnits:
        import torch

        first = [q["sentence1"] for q in queries]
        second = [q["sentence2"] for q in queries]
        with torch.inference_mode():
            embeddings = encoder.encode(first + second, batch_size=2 * len(queries), convert_to_tensor=True,
                                        show_progress_bar=False)
            torch.nn.functional.cosine_similarity(embeddings[: len(queries)], embeddings[len(queries):]).tolist()
        return WorkUnits(len(queries), input_tokens=count_tokens(encoder.tokenizer, first + second))


WORKLOAD = SentenceSimilarity()
