"""fill-mask on long documents: what placing the mask inside the model's limit costs, inside the meter window.

A document longer than the model's limit is cut to the words that fit before its middle word is masked
(worker.workloads.fill_mask). Prints, per document, the time of that preparation for a fast tokenizer (one
pass, character offsets) and for the search by halves that slow tokenizers take, against the pipeline's own
time for the same batch. tiny:bert (512 tokens), builtin:news documents joined to ~5,000 tokens.
`python bench/fill_mask_cut.py [documents]` (default 50; well under a minute).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.data.datasets import load_queries  # noqa: E402
from worker.workloads import get_workload  # noqa: E402
from worker.workloads._shared import quiet  # noqa: E402
from worker.workloads.fill_mask import mask_inside, token_limit  # noqa: E402


class HalvesOnly:
    """The tokenizer seen as a slow one (no offsets): the search by halves."""

    is_fast = False

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.mask_token = tokenizer, tokenizer.mask_token

    def __call__(self, *args, **kwargs):
        return self.tokenizer(*args, **kwargs)

    def num_special_tokens_to_add(self) -> int:
        return self.tokenizer.num_special_tokens_to_add()


def per_document_ms(prepare, documents: list[str]) -> float:
    times = []
    for document in documents:
        started = time.perf_counter()
        prepare(document)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(n: int = 50) -> None:
    workload = get_workload("fill-mask")
    pipeline = workload.load("tiny:bert", "cpu", {})
    tokenizer, limit = pipeline.tokenizer, token_limit(pipeline)
    news = load_queries("builtin:news", 40 + n)
    documents = [" ".join(news[i:i + 40]) for i in range(n)]
    with quiet():
        tokens = statistics.median(len(tokenizer(d)["input_ids"]) for d in documents[:5])
        fast = per_document_ms(lambda d: mask_inside(d, tokenizer, limit), documents)
        halves = per_document_ms(lambda d: mask_inside(d, HalvesOnly(tokenizer), limit), documents)
        started = time.perf_counter()
        workload.run(pipeline, documents, 8, {})
        run_ms = (time.perf_counter() - started) * 1000 / n
    print(f"{n} documents of ~{tokens:.0f} tokens, model limit {limit} (tiny:bert, CPU)")
    print(f"  mask placement, fast tokenizer (offsets): {fast:.2f} ms per document (median)")
    print(f"  mask placement, search by halves:         {halves:.2f} ms per document (median)")
    print(f"  whole run (placement + pipeline):         {run_ms:.2f} ms per document")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
