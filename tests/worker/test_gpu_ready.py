"""Issue 18: defects a GPU node would hit, each forced on the CPU path (no GPU needed)."""

from __future__ import annotations

import gc
import types
import weakref

import pytest


class _SelfReferringModel:
    """Like a sentence-transformers model: it refers to itself (through its model card data), so only the
    collector frees it and its weights."""

    def __init__(self) -> None:
        import torch

        self.weights = torch.zeros(1024)
        self.card_data = {"model": self}


def test_unload_frees_a_self_referring_model_even_after_the_worker_froze_the_heap():
    from worker.process.executor import UnitExecutor, _Model

    executor = UnitExecutor(types.SimpleNamespace(device="cpu"))
    model = _SelfReferringModel()
    weights = weakref.ref(model.weights)
    executor.model = _Model(1, "sentence-similarity", "tiny:x", None, {}, {}, pipeline=model)
    del model
    gc.collect()
    gc.freeze()  # what WorkerContext.run does after every job, with the model still loaded
    try:
        executor.unload()
        gc.collect()
        assert weights() is None, "the unloaded model's weights are still alive"
    finally:
        gc.unfreeze()
