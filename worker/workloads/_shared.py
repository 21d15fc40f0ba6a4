"""Code every workload shares: parameter merging, quiet pipelines, token counting, generation counting.

A leading underscore keeps this module out of the registry. Module level stays
light (standard library only); transformers is imported inside functions.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from worker.workloads.base import BatchTiming, WorkDone


def merged(task: str, defaults: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by sweep params; an unknown name is an error (a typo must not change the measurement)."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for task {task!r}: "
                         f"allowed are {', '.join(sorted(defaults)) or 'none'}")
    return {**defaults, **params}


@contextlib.contextmanager
def quiet(diffusers: bool = False) -> Iterator[None]:
    """Silence library warnings, log chatter and progress bars around our calls, then restore the caller's state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # also diffusers' CUDA-autocast warnings at import on CPU-only hosts
        import transformers

        loggers = [transformers.utils.logging]
        if diffusers:
            import diffusers as diffusers_module

            loggers.append(diffusers_module.utils.logging)
        saved = [(log.get_verbosity(), log.is_progress_bar_enabled()) for log in loggers]
        for log in loggers:
            log.set_verbosity_error()
            log.disable_progress_bar()
        try:
            yield
        finally:
            for log, (level, bars) in zip(loggers, saved, strict=True):
                log.set_verbosity(level)
                if bars:
                    log.enable_progress_bar()


def cut_words(texts: Sequence[str], max_words: int | None) -> list[str]:
    """The study's prompt truncation (20 words for text generation, 50 for text-to-image); None keeps all."""
    if not max_words:
        return list(texts)
    return [" ".join(text.split()[: int(max_words)]) for text in texts]


def resize_images(images: Sequence[Any], size_px: int | Sequence[int] | None) -> list[Any]:
    """Images resized before the model's processor sees them: `N` (N x N) or `[width, height]`; None: as they come.

    Nearest-neighbour, as the study resized its captioning images to 640 x 480.
    """
    if not size_px:
        return list(images)
    width, height = (size_px, size_px) if isinstance(size_px, int) else size_px
    return [image.resize((int(width), int(height)), resample=0) for image in images]


def batches(items: Sequence[Any], batch_size: int) -> Iterator[list[Any]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield list(items[start:start + batch_size])


class BatchTimer:
    """Times each batch of a run from outside it (perf_counter before and after: nothing inside changes).

    Generation counters call `first_token()` on their first step, so the time to
    the first new token is known wherever the workload counts tokens anyway.
    """

    def __init__(self) -> None:
        self.batch_s: list[float] = []
        self.batch_queries: list[int] = []
        self.first_token_s: list[float] = []
        self._started = 0.0
        self._first_seen = True

    @contextlib.contextmanager
    def batch(self, n_queries: int) -> Iterator[None]:
        token = _ACTIVE_TIMER.set(self)
        self._first_seen = False
        self._started = time.perf_counter()
        try:
            yield
        finally:
            self.batch_s.append(time.perf_counter() - self._started)
            self.batch_queries.append(n_queries)
            self._first_seen = True
            _ACTIVE_TIMER.reset(token)

    @property
    def waiting_for_first_token(self) -> bool:
        return not self._first_seen

    def first_token(self) -> None:
        if not self._first_seen:
            self._first_seen = True
            self.first_token_s.append(time.perf_counter() - self._started)

    def timing(self) -> BatchTiming:
        return BatchTiming(tuple(self.batch_s), tuple(self.batch_queries), tuple(self.first_token_s))


_ACTIVE_TIMER: contextvars.ContextVar[BatchTimer | None] = contextvars.ContextVar("wattsweep_batch_timer",
                                                                                  default=None)


def run_batches(call: Callable[[list[Any]], WorkDone], queries: Sequence[Any], batch_size: int) -> WorkDone:
    """`call` once per batch of `batch_size` consecutive queries, each timed; the units of all, with the timing."""
    timer = BatchTimer()
    total = WorkDone(0)
    for batch in batches(queries, batch_size):
        with timer.batch(len(batch)):
            units = call(batch)
        total = total + units
    return replace(total, timing=timer.timing())


def one_or_many(items: list[Any]) -> Any:
    """A batch of one as the single input it is: pipelines then take their direct path, as a bare call does,
    instead of building a DataLoader for one item."""
    return items[0] if len(items) == 1 else items


def count_tokens(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Callable[[], int]:
    """Input tokens as the model sees them (special tokens included, truncated to the model's maximum).

    Deferred: the count runs when `WorkDone.resolved()` asks, after the meter window has closed.
    """
    texts, pairs = list(texts), list(pairs) if pairs is not None else None

    def count() -> int:
        if not texts:
            return 0
        return sum(len(ids) for ids in tokenizer(texts, pairs, truncation=True)["input_ids"])

    return count


def hf_pipeline(task: str, model: str, device: str, params: Mapping[str, Any]) -> Any:
    """A transformers pipeline for `task` on `device`, built from our loader (tokenizer/processor passed in)."""
    from transformers import pipeline

    from worker.models.loading import load_for_task

    with quiet():
        loaded = load_for_task(model, task, device, params.get("dtype"))
        result = pipeline(task, model=loaded.model, tokenizer=loaded.tokenizer,
                          image_processor=loaded.image_processor, feature_extractor=loaded.feature_extractor,
                          device=pipeline_device(loaded.model, device))
    result.wattsweep_provenance = loaded.provenance  # Hub commit, dtype, parameters: stored with the job
    return result


def pipeline_device(model: Any, device: str) -> str | None:
    """The `device` a transformers pipeline is given: none for a model spread over a group of GPUs (accelerate's
    hooks move each input to its layer's GPU; the pipeline refuses a device for such a model), else `device`."""
    return None if getattr(model, "hf_device_map", None) else device


def synchronize_device_of(tensor: Any) -> None:
    """Wait until the device holding `tensor` has finished its queued work (nothing to wait for on the CPU)."""
    device = getattr(tensor, "device", None)
    kind = getattr(device, "type", "cpu")
    if kind == "cpu":
        return
    import torch

    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif hasattr(torch, kind) and hasattr(getattr(torch, kind), "synchronize"):  # xpu, mps, ...
        getattr(torch, kind).synchronize()


class TokenCounter:
    """A logits processor that counts generated tokens: `generate` calls it once per step.

    Each call sees one row per sequence and beam, so rows / num_beams tokens were
    emitted. It counts what was computed: with fixed output lengths
    (min_new_tokens = max_new_tokens) that is exactly queries x max_new_tokens,
    and it stays a true count if a model or parameter ever lets lengths differ.
    """

    def __init__(self, num_beams: int = 1) -> None:
        self.num_beams = num_beams
        self.tokens = 0
        self._timer = _ACTIVE_TIMER.get()  # the batch being timed, told when the first new token is out

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._timer is not None and self._timer.waiting_for_first_token:
            # On an accelerator the prefill's kernels are only queued when this runs: wait for them, or the
            # time to first token is the launch time. Once per batch, so decoding is not slowed.
            synchronize_device_of(scores)
            self._timer.first_token()
        self.tokens += int(scores.shape[0]) // self.num_beams
        return scores


def fixed_length_generation(pipeline: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], TokenCounter]:
    """generate() kwargs that always emit exactly max_new_tokens (EOS is masked until then), and their counter.

    Beams stay the pipeline's default unless the sweep's `num_beams` says otherwise, as in the study: e.g. the
    summarization pipeline searches 4 beams; sampling is off unless the sweep's `temperature` turns it on
    (worker.workloads._decoding), whatever the model's generation config says.
    """
    from transformers import LogitsProcessorList

    from worker.workloads._decoding import decoding_kwargs

    decoding = decoding_kwargs(params)  # greedy unless the sweep asks for sampling (issue 18, defect 5)
    counter = TokenCounter(decoding.get("num_beams") or num_beams(pipeline))
    length = int(params["max_new_tokens"])
    kwargs = {"max_new_tokens": length, "min_new_tokens": length, "logits_processor": LogitsProcessorList([counter]),
              **decoding}
    return kwargs, counter


def num_beams(pipeline: Any) -> int:
    """The beams `generate` will search for this pipeline (or our generator: its own `generation_config`).

    A transformers 5 pipeline keeps no config of its own: the model's setting wins, and where the model sets
    nothing the pipeline's class default applies (Whisper's speech recognition: 5 beams), as `generate` is told.
    """
    from transformers import GenerationConfig

    own = getattr(pipeline, "generation_config", None)
    if own is not None:
        return int(own.num_beams or 1)
    beams = pipeline.model.generation_config.num_beams
    if beams is not None and beams != GenerationConfig().num_beams:
        return int(beams)
    default = getattr(type(pipeline), "_default_generation_config", None)
    return int(getattr(default, "num_beams", None) or beams or 1)


def set_pad_token(pipeline: Any, tokenizer: Any) -> None:
    """Batched generation needs a pad token: the tokenizer's, told to the model's generation config (and to a
    transformers 4 pipeline's own copy)."""
    for config in (pipeline.model.generation_config, getattr(pipeline, "generation_config", None)):
        if config is not None and config.pad_token_id is None:
            config.pad_token_id = tokenizer.pad_token_id


def generated(counter: TokenCounter, generate: Mapping[str, Any], n_queries: int) -> dict[str, int | None]:
    """A batch's output-token fields: what was counted and, where `generate` fixes the length
    (min_new_tokens = max_new_tokens), what should have been (queries x max_new_tokens: WorkDone.flags checks)."""
    fixed = generate.get("min_new_tokens") is not None and generate.get("min_new_tokens") == generate.get(
        "max_new_tokens")
    return {"output_tokens": counter.tokens,
            "expected_output_tokens": n_queries * int(generate["max_new_tokens"]) if fixed else None}


class PipelineWorkload:
    """Base for workloads that are one transformers pipeline: subclasses set the fields (from their task's
    declaration in worker.contract.tasks) and `call`."""

    task: str
    input_kind: str
    default_params: Mapping[str, Any]

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        return hf_pipeline(self.task, model, device, merged(self.task, self.default_params, params))

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        settings = merged(self.task, self.default_params, params)
        from worker.workloads._decoding import seed_run

        seed_run(settings)  # sampled decoding repeats run after run
        with quiet():
            return run_batches(lambda batch: self.call(pipeline, batch, batch_size, settings), list(queries),
                               batch_size)

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkDone:
        """Run one batch of queries through the pipeline and say what was processed."""
        raise NotImplementedError


class ImagePipelineWorkload(PipelineWorkload):
    """A pipeline that reads one image per query and returns labels or boxes (classification, detection);
    `resize_px` (N or [width, height]) resizes the images first."""

    def call(self, pipeline: Any, queries: list[Any], batch_size: int, params: dict[str, Any]) -> WorkDone:
        pipeline(one_or_many(resize_images(queries, params["resize_px"])), batch_size=batch_size)
        return WorkDone(len(queries), images=len(queries))
