"""execute_job in-process: one query per task is measured and stored; prefill windows; re-runs skip done work."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Job, Measurement, Run
from db.results.stats import headline_kwh
from db.results.views import decode_rows
from db.session import session_factory
from scheduler.plan.submit import create_sweep
from scheduler.spec.reading import parse_sweep
from worker.process.executor import execute_job
from worker.process.runtime import WorkerRuntime
from worker.workloads import WORKLOADS

TINY_FOR = {"text-generation": "tiny:gpt2", "summarization": "tiny:t5", "image-classification": "tiny:vit",
            "object-detection": "tiny:yolos", "image-to-text": "tiny:vit-gpt2",
            "text-to-image": "tiny:stable-diffusion", "automatic-speech-recognition": "tiny:whisper",
            "sentence-similarity": "tiny:sentence-bert", "reasoning": "tiny:gpt2"}
DATASET_FOR = {"text": "builtin:texts", "qa": "builtin:squad-like", "document": "builtin:news",
               "prompt": "builtin:prompts", "image": "builtin:shapes", "audio": "builtin:speech",
               "pair": "builtin:sentence-pairs"}
FAST_PARAMS = {"text-to-image": {"num_inference_steps": 2, "height": 64, "width": 64},
               "automatic-speech-recognition": {"max_new_tokens": 4}, "reasoning": {"max_new_tokens": 6,
                                                                                   "reasoning": "on"}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('execute') / 'wattsweep.db'}"
    upgrade(url)
    runtime = WorkerRuntime(worker_id="test@host", device="cpu", hardware_class="cpu",
                            sessions=session_factory(url), baseline_window_s=0.5)
    runtime.register()
    yield runtime
    runtime.close()


def submit(runtime, tasks: dict) -> int:
    spec = parse_sweep({"name": "one", "defaults": {"queries": 1, "repetitions": 1, "warmup": 1},
                        "carbon": {"grid_intensity_g_per_kwh": 100}, "tasks": tasks})
    with runtime.sessions.begin() as session:
        sweep = create_sweep(session, spec, mode="local")
        return session.scalar(select(Job.id).where(Job.sweep_id == sweep.id))


@pytest.mark.parametrize("task", sorted(WORKLOADS))
def test_one_query_of_each_task_is_measured_and_stored(runtime, task):
    dataset = DATASET_FOR[WORKLOADS[task].input_kind]
    job_id = submit(runtime, {task: {"models": [TINY_FOR.get(task, "tiny:bert")], "datasets": [dataset],
                                     "params": FAST_PARAMS.get(task, {})}})
    assert execute_job(job_id, runtime) == "done"
    with runtime.sessions() as session:
        query = session.scalars(select(Measurement).where(Measurement.job_id == job_id,
                                                          Measurement.phase == "query")).one()
        assert query.n_queries == 1 and query.energy_kwh > 0 and query.kwh_per_1k_queries > 0
        assert query.baseline_id is not None and query.idle_energy_kwh is not None
        assert query.hostname and query.cpu_energy_attributed_kwh is not None
        # latency: timed around the batch, inside the window
        assert 0 < query.latency_p50_s <= query.latency_p95_s <= query.duration_s
        assert query.throughput_queries_per_s == pytest.approx(1 / query.duration_s)
        if "max_new_tokens" in WORKLOADS[task].default_params:
            assert 0 < query.ttft_p50_s <= query.latency_p50_s
        # the new tasks' units
        if task == "automatic-speech-recognition":
            assert query.audio_s > 0.4 and 1 <= query.output_tokens <= 4
        if task == "reasoning":
            assert 1 <= query.output_tokens <= 6 and query.output_tokens_p50 == query.output_tokens
        if task == "sentence-similarity":
            assert query.input_tokens > 0
        load = session.scalars(select(Measurement).where(Measurement.job_id == job_id,
                                                         Measurement.phase == "load")).one()
        assert load.energy_kwh > 0


def test_prefill_window_and_a_second_delivery_runs_nothing(runtime):
    job_id = submit(runtime, {"text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                                                  "params": {"max_new_tokens": 4, "measure_prefill": True}}})
    assert execute_job(job_id, runtime) == "done"
    assert execute_job(job_id, runtime) == "skipped"  # a job id delivered twice is run once
    with runtime.sessions() as session:
        phases = sorted(session.scalars(select(Measurement.phase).where(Measurement.job_id == job_id)))
        assert phases == ["load", "prefill", "query"]
        query = session.scalars(select(Measurement).where(Measurement.job_id == job_id,
                                                          Measurement.phase == "query")).one()
        assert query.output_tokens == 4
        prefill = session.scalars(select(Measurement).where(Measurement.job_id == job_id,
                                                            Measurement.phase == "prefill")).one()
        assert prefill.output_tokens == 1  # its own units: one new token per query, not the query window's 4
        assert prefill.input_tokens == query.input_tokens
        assert not {*(prefill.flags or '').split(','), *(query.flags or '').split(',')} & {'length-mismatch'}
        assert session.scalars(select(Run.status).where(Run.job_id == job_id)).all() == ["done"]
        sweep_id = session.get(Job, job_id).sweep_id
        [decode] = decode_rows(session, sweep_id=sweep_id)
    assert decode["decode_tokens"] == 3  # queries x (max_new_tokens - 1)
    decode_kwh = headline_kwh(query) - headline_kwh(prefill)
    assert decode["decode_energy_kwh"] == pytest.approx(decode_kwh)
    assert decode["kwh_per_decode_token"] == pytest.approx(decode_kwh / 3)


def test_a_generated_length_other_than_queries_x_max_new_tokens_is_flagged(runtime, monkeypatch):
    """Fixed-length generation is checked: a count that is not queries x max_new_tokens (here one step a batch
    goes uncounted, as with a model or parameter that ends generation early) flags the window `length-mismatch`."""
    from worker.workloads._shared import TokenCounter

    counted = TokenCounter.__call__

    def skip_first_step(self, input_ids, scores):
        if getattr(self, "skipped", False):
            return counted(self, input_ids, scores)
        self.skipped = True
        return scores

    monkeypatch.setattr(TokenCounter, "__call__", skip_first_step)
    job_id = submit(runtime, {"text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                                                  "params": {"max_new_tokens": 3}}})
    assert execute_job(job_id, runtime) == "done"
    with runtime.sessions() as session:
        query = session.scalars(select(Measurement).where(Measurement.job_id == job_id,
                                                          Measurement.phase == "query")).one()
        assert query.output_tokens == 2 and "length-mismatch" in query.flags.split(",") and query.is_unreliable


def test_an_error_that_escapes_a_unit_hands_the_unit_on_instead_of_holding_it(runtime, monkeypatch):
    """Whatever escapes the executor (a database gone for longer than db_retry_s, a bug) fails the unit through
    the loop, which releases its hold: raising out of the task left the unit leased, and its lease beaten by the
    heartbeat thread, for ever."""
    from db.models import Shard
    from worker.process.executor import UnitExecutor, make_loop

    job_id = submit(runtime, {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}})
    held = []
    executor = UnitExecutor(runtime)
    loop = make_loop(runtime, executor, mode=None, hold=held.append)

    def broken(claim):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(executor, "execute", broken)
    assert executor.drive(loop.serve(job_id, joins=1, only_job_id=job_id)) == "failed-unit"  # the loop went on
    assert held[-1] is None  # nothing held any more
    with runtime.sessions() as session:
        shard = session.scalars(select(Shard).where(Shard.job_id == job_id)).one()
        assert shard.status == "failed" and shard.lease_token is None
        assert shard.error == "RuntimeError: the disk went away"
    executor.unload()


def test_per_run_baseline_measures_before_every_run(runtime):
    """`baseline: per-run` in the sweep file: every run subtracts a baseline of its own (the load's serves the
    first); without it, the runs of a job share one."""
    def run_baselines(extra: dict) -> list[int]:
        spec = parse_sweep({"name": f"b{len(extra)}", "defaults": {"queries": 1, "repetitions": 3, "warmup": 0},
                            "carbon": {"grid_intensity_g_per_kwh": 100}, **extra,
                            "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}}})
        with runtime.sessions.begin() as session:
            job_id = session.scalar(select(Job.id).where(Job.sweep_id == create_sweep(session, spec,
                                                                                      mode="local").id))
        assert execute_job(job_id, runtime) == "done"
        with runtime.sessions() as session:
            return list(session.scalars(select(Measurement.baseline_id).where(
                Measurement.job_id == job_id, Measurement.phase == "query").order_by(Measurement.id)))

    assert len(set(run_baselines({"baseline": "per-run"}))) == 3
    assert len(set(run_baselines({}))) == 1


def test_a_dead_device_context_fails_its_unit_with_the_reason_and_the_worker_exits(runtime, monkeypatch):
    """Issue 18, defect 4: a device-side error (torch.AcceleratorError, e.g. an assert in torch.multinomial on
    NaN probabilities) makes the CUDA context unusable. The unit fails saying so, no later unit is claimed on
    the dead context, and the worker process exits with EXIT_DEVICE_LOST for a fresh one (was: an ordinary
    failure, the next units failing the same way, three jobs charged)."""
    import torch

    from db.models import Shard
    from worker.process.celery_worker import EXIT_DEVICE_LOST, exit_if_device_lost
    from worker.process.executor import UnitExecutor, make_loop

    job_id = submit(runtime, {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                                            "repetitions": 3}})
    executor = UnitExecutor(runtime)
    loop = make_loop(runtime, executor, mode=None)
    calls = []

    def device_assert(pipeline, queries, batch_size, params):
        calls.append(len(queries))
        raise torch.AcceleratorError("CUDA error: device-side assert triggered")

    executor_load = executor.load

    def load(claim):
        answer = executor_load(claim)
        monkeypatch.setattr(executor.model.workload, "run", device_assert)
        return answer

    monkeypatch.setattr(executor, "load", load)
    assert executor.drive(loop.serve(job_id, joins=1, only_job_id=job_id)) != "done"
    assert len(calls) == 1  # the warm-up met the error; nothing ran after it on the dead context
    with runtime.sessions() as session:
        shards = session.scalars(select(Shard).where(Shard.job_id == job_id).order_by(Shard.id)).all()
        failed = [s for s in shards if s.error]  # its attempt is spent; another worker may retry it
        assert len(failed) == 1 and "device lost" in failed[0].error and "AcceleratorError" in failed[0].error
        assert len(shards) == 3 and all(s.attempts == 0 for s in shards if not s.error)  # never claimed here
        assert all(s.status != "running" and s.lease_token is None for s in shards)
    assert loop.device_lost and loop.stopped_reason.startswith("device lost")
    with pytest.raises(SystemExit) as exited:
        exit_if_device_lost(loop)
    assert exited.value.code == EXIT_DEVICE_LOST
    executor.unload()


def test_out_of_memory_is_not_a_dead_context():
    import torch

    from worker.errors import is_device_lost

    assert is_device_lost(torch.AcceleratorError("CUDA error: an illegal memory access was encountered"))
    assert not is_device_lost(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_device_lost(RuntimeError("the disk went away"))


def test_the_jobs_float32_numerics_are_stored_with_what_was_loaded(runtime):
    """Issue 18, defect 3: TF32 and the float32 matmul precision change what an FP32 model costs on a GPU; each job
    stores them as the worker's torch had them at the load."""
    import torch

    job_id = submit(runtime, {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}})
    assert execute_job(job_id, runtime) == "done"
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        assert job.float32_matmul_precision == torch.get_float32_matmul_precision()
        assert job.tf32_matmul is bool(torch.backends.cuda.matmul.allow_tf32)
        assert job.tf32_cudnn is bool(torch.backends.cudnn.allow_tf32)
