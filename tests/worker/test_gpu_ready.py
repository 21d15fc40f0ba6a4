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


def test_time_to_first_token_waits_for_the_queued_prefill(monkeypatch):
    """A CUDA prefill returns to Python before its kernels ran: the stamp must come after they have (here the
    device's synchronize stands for 0.3 s of queued kernels)."""
    import time

    import torch

    from worker.workloads._shared import BatchTimer, TokenCounter

    pending_s = 0.3
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: time.sleep(pending_s))
    scores = types.SimpleNamespace(shape=(2, 50), device=torch.device("cuda", 0))
    timer = BatchTimer()
    with timer.batch(2):
        counter = TokenCounter()  # made inside the batch, as generate's logits processors are
        counter(None, scores)  # the first generation step: the prefill's logits, still being computed
        counter(None, scores)
    assert timer.first_token_s[0] >= pending_s
    assert counter.tokens == 4


def test_time_to_first_token_on_the_cpu_comes_after_the_forward_pass():
    """On the CPU the forward pass is synchronous: a slow one is inside the stamp."""
    import time

    from worker.workloads._shared import BatchTimer, TokenCounter

    timer = BatchTimer()
    with timer.batch(1):
        counter = TokenCounter()
        time.sleep(0.2)  # the forward pass
        import torch

        counter(None, torch.zeros(1, 8))
    assert timer.first_token_s[0] >= 0.2


def test_a_gpu_window_with_zero_energy_is_flagged_unreliable_not_called_a_measurement():
    from worker.measure.meter import UNRELIABLE, window_flags

    zero = types.SimpleNamespace(duration=30.0, cpu_energy=1e-4, gpu_energy=0.0, ram_energy=1e-5)
    for method in ("power-sampling", "nvml-energy-counter"):
        assert "gpu-energy-zero" in window_flags(zero, cpu_method="rapl", gpu_method=method)
    assert "gpu-energy-zero" in UNRELIABLE
    assert window_flags(zero, cpu_method="rapl", gpu_method="none") == []  # a CPU worker meters no GPU
    drawn = types.SimpleNamespace(duration=30.0, cpu_energy=1e-4, gpu_energy=1e-3, ram_energy=1e-5)
    assert window_flags(drawn, cpu_method="rapl", gpu_method="power-sampling") == []


def test_a_meter_that_cannot_start_stops_the_worker_at_start_in_one_line(tmp_path, monkeypatch):
    """Issue 18, defect 9: the meter was first made by the first job, so an NVML or driver problem showed up as
    three failed jobs. Now `wattsweep worker` builds it before anything else (database, broker) and exits 2."""
    from db.settings import get_settings
    from worker.measure import meter
    from worker.process import celery_worker

    def broken(**_):
        raise meter.MeterError("GPU 0: NVML: Driver/library version mismatch")

    monkeypatch.setattr(meter, "Meter", broken)
    monkeypatch.setattr(celery_worker, "apply_pinning", lambda pinning: None)  # torch is imported in this process
    monkeypatch.setenv("WATTSWEEP_DATABASE_URL", f"sqlite:///{tmp_path / 'no-schema.db'}")
    get_settings.cache_clear()
    try:
        with pytest.raises(celery_worker.WorkerStartError) as started:
            celery_worker.serve(celery_worker.WorkerOptions(queue="cpu", device="cpu"))
    finally:
        get_settings.cache_clear()
    message = str(started.value)
    assert "energy meter cannot start" in message and "version mismatch" in message and "\n" not in message
