"""The GPU check (issue 18): proves wattsweep's numbers on one GPU in at most 7 minutes. PASS or FAIL per check.

Replaces gpu_check_smoke.py, gpu_check_meter.py and gpu_check_aies.py. Nothing is downloaded: the device machine
has no network, so every model is a random-weight model of a real architecture built here, and every query set
is builtin. Pinned the way `wattsweep worker --gpu N` pins; the baseline settle timeout is 20 s.

Parts, each with a time budget it prints (the sum fits in 7 minutes by construction: sizes are fixed or
calibrated to the budget, never open-ended):
  device    driver, torch's CUDA, CUDA_VISIBLE_DEVICES, UUIDs; torch computes on the GPU that is metered
  counter   the NVML energy counter's update interval, over 2 s
  power     10 s idle, 10 s of BF16 matmuls: loaded power far above idle; the counter's delta against CodeCarbon's
            figure (within 2%) and against power sampled at 20 Hz (within 5%)
  ttft      time to first token of a real-size (GPT-2 small) model, with and without the synchronisation
  memory    the GPU filled to 2 GB free, then a model that does not fit: refused before loading, one line with
            both sizes; a clean load after
  freeze    a sentence-transformers model loaded, frozen (as the worker does after a job) and unloaded, twice:
            memory back to its baseline
  cells     one cell per task, each window >= 5 s: done, `nvml-energy-counter`, gpu_count 1, the model on CUDA
  group     only on a machine with 2 or more GPUs (SKIP otherwise): a model loaded over a group of two
            (device_map="auto", each GPU's free memory its max_memory) has layers on both and generates; a model
            larger than both GPUs' free memory is refused naming both sizes

    python bench/gpu_check.py --gpu 0      # on a GPU node
    python bench/gpu_check.py --cpu        # CI: the CPU-applicable checks (ttft, freeze, cells); others SKIP

The last line is the summary: `gpu_check: N PASS, M FAIL, K SKIP in T s` (SKIP: not applicable on the CPU).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETTLE_TIMEOUT_S = 20.0  # the baseline waits at most this for the GPU to settle (the default is 120 s)
BUDGET_S = {"device": 15, "counter": 5, "power": 40, "ttft": 45, "memory": 60, "freeze": 30, "cells": 200, "group": 25}
WINDOW_MIN_S = 5.0  # each cell's query window on the GPU
GPU_ONLY = {"device", "counter", "power", "memory", "group"}


class Checks:
    """Collects PASS / FAIL / SKIP lines and runs each part inside its printed budget."""

    def __init__(self, cpu: bool) -> None:
        self.cpu = cpu
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.started = time.perf_counter()

    def check(self, part: str, name: str, ok: bool, detail: str = "") -> bool:
        status = "PASS" if ok else "FAIL"
        self.counts[status] += 1
        print(f"{status} {part}: {name}{' (' + detail + ')' if detail else ''}", flush=True)
        return ok

    def skip(self, part: str, why: str) -> None:
        self.counts["SKIP"] += 1
        print(f"SKIP {part}: {why}", flush=True)

    def part(self, name: str, run: Callable[[], None]) -> None:
        budget = BUDGET_S[name]
        print(f"== {name} (budget {budget} s)", flush=True)
        if self.cpu and name in GPU_ONLY:
            self.skip(name, "needs a GPU")
            return
        start = time.perf_counter()
        try:
            run()
        except Exception as error:  # one part failing must not hide the others' results
            self.check(name, "ran to the end", False, f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
        took = time.perf_counter() - start
        self.check(name, "within its budget", took <= budget, f"{took:.1f} s of {budget} s")

    def summary(self) -> str:
        c = self.counts
        return (f"gpu_check: {c['PASS']} PASS, {c['FAIL']} FAIL, {c['SKIP']} SKIP in "
                f"{time.perf_counter() - self.started:.0f} s")


def gap(value: float, reference: float) -> float:
    return abs(value - reference) / reference if reference else float("inf")


# --- device, counter, power (GPU only)


def part_device(checks: Checks, pinning, gpu: dict) -> None:
    import torch

    from worker.process.pinning import PinningError, check_torch_device, torch_device_uuid

    print(f"driver {gpu['driver']}, CUDA driver {gpu['cuda']}, torch {torch.__version__} built for CUDA "
          f"{torch.version.cuda}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
    checks.check("device", "torch sees CUDA", torch.cuda.is_available(), torch.cuda.get_device_name(0))
    torch_uuid = torch_device_uuid()
    try:
        check_torch_device(pinning, gpu["uuid"], torch_uuid)
        checks.check("device", "torch computes on the GPU NVML meters", True, f"{gpu['uuid']} = {torch_uuid}")
    except PinningError as error:
        checks.check("device", "torch computes on the GPU NVML meters", False, str(error))


def part_counter(checks: Checks, reader) -> None:
    """How often the counter moves: the meter's flags assume about every GPU_COUNTER_UPDATE_S."""
    from worker.measure.meter import GPU_COUNTER_UPDATE_S

    changes, last, end = [], reader.energy_mj(), time.perf_counter() + 2.0
    while time.perf_counter() < end:
        value = reader.energy_mj()
        if value != last:
            changes.append(time.perf_counter())
            last = value
        time.sleep(0.001)
    steps = sorted(b - a for a, b in zip(changes, changes[1:], strict=False))
    interval = steps[len(steps) // 2] if steps else float("inf")
    checks.check("counter", f"updates at least every {1.5 * GPU_COUNTER_UPDATE_S * 1000:.0f} ms",
                 interval <= 1.5 * GPU_COUNTER_UPDATE_S, f"median {interval * 1000:.0f} ms over {len(steps)} steps")


def part_power(checks: Checks, meter, reader) -> None:
    import pynvml
    import torch

    with meter.window("warm-up"):  # CodeCarbon's first task also counts its own set-up
        pass
    with meter.window("idle") as idle:
        time.sleep(10.0)
    idle_w = idle.reading.gpu_power_w or 0.0
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    handle = pynvml.nvmlDeviceGetHandleByIndex(reader.gpu_index)
    samples, stop = [], threading.Event()

    def sample() -> None:  # 20 Hz, as an independent figure
        while not stop.is_set():
            samples.append((time.perf_counter(), pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
            stop.wait(0.05)

    before_mj = reader.energy_mj()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with meter.window("query") as loaded:
        end = time.perf_counter() + 10.0
        while time.perf_counter() < end:
            for _ in range(20):
                a @ b
            torch.cuda.synchronize()
    stop.set()
    sampler.join()
    after_mj = reader.energy_mj()
    r = loaded.reading
    counter_kwh = (after_mj - before_mj) / 3.6e9
    sampled_kwh = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(samples, samples[1:], strict=False)) \
        / 3.6e6
    loaded_w = r.gpu_power_w or 0.0
    checks.check("power", "loaded power far above idle (> 2x)", loaded_w > 2 * idle_w,
                 f"idle {idle_w:.0f} W, BF16 matmuls {loaded_w:.0f} W")
    checks.check("power", "method nvml-energy-counter", r.gpu_method == "nvml-energy-counter", r.gpu_method)
    checks.check("power", "counter delta vs CodeCarbon within 2%", gap(r.gpu_energy_kwh, counter_kwh) <= 0.02,
                 f"CodeCarbon {r.gpu_energy_kwh:.4e} kWh, counter {counter_kwh:.4e} kWh")
    checks.check("power", "counter delta vs 20 Hz power sampling within 5%", gap(sampled_kwh, counter_kwh) <= 0.05,
                 f"sampled {sampled_kwh:.4e} kWh over {len(samples)} samples")
    del a, b
    torch.cuda.empty_cache()


# --- ttft, memory, freeze


def part_ttft(checks: Checks, device: str) -> None:
    """The stamp must come after the prefill has finished, not when its kernels were queued. Within one generate
    call: the prefill's true end (a CUDA event recorded behind its kernels; on the CPU, when its forward returned)
    against wattsweep's stamp, with and without the synchronisation (without: what it measured before issue 18)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

    from worker.workloads import _shared

    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    if cuda:  # GPT-2 small (124M parameters, random weights), 8 prompts of 512 tokens
        config, shape = GPT2Config(), (8, 512)
    else:  # the CPU (CI, shared cores) checks the logic on a small GPT-2 in seconds
        config, shape = GPT2Config(n_layer=2, n_embd=128, n_head=4), (1, 32)
    model = GPT2LMHeadModel(config).eval().to(device)
    prompt = torch.randint(0, 50000, shape, device=device)

    def once() -> tuple[float, float]:
        """(wattsweep's time to first token, the prefill's true end), both from the batch's start."""
        timer, marks = _shared.BatchTimer(), {}

        def prefill_done(module, args, output) -> None:
            if "end" not in marks:
                if cuda:
                    marks["end"] = torch.cuda.Event(enable_timing=True)
                    marks["end"].record()
                else:
                    marks["end"] = time.perf_counter()

        hook = model.register_forward_hook(prefill_done)
        try:
            with timer.batch(shape[0]), torch.no_grad():
                if cuda:
                    marks["start"] = torch.cuda.Event(enable_timing=True)
                    marks["start"].record()
                counter = _shared.TokenCounter()
                model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=2, min_new_tokens=2,
                               do_sample=False, pad_token_id=0, logits_processor=LogitsProcessorList([counter]))
                started = timer._started
        finally:
            hook.remove()
        if cuda:
            torch.cuda.synchronize()
            true_s = marks["start"].elapsed_time(marks["end"]) / 1000
        else:
            true_s = marks["end"] - started
        return timer.first_token_s[0], true_s

    once()  # warm-up
    synced = [once() for _ in range(3)]
    real = _shared.synchronize_device_of
    _shared.synchronize_device_of = lambda tensor: None
    try:
        unsynced = [once() for _ in range(3)]
    finally:
        _shared.synchronize_device_of = real
    ok = all(stamp >= 0.95 * true_s for stamp, true_s in synced)  # 5%: the events' and the clock's start differ
    checks.check("ttft", "the first-token stamp comes after the prefill has run", ok,
                 "synchronised: " + ", ".join(f"{a * 1000:.1f} ms (prefill done {b * 1000:.1f})" for a, b in synced)
                 + "; without: " + ", ".join(f"{a * 1000:.1f} ms (prefill done {b * 1000:.1f})" for a, b in unsynced))


def part_memory(checks: Checks, folder: Path) -> None:
    import gc

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from worker.errors import ModelLoadError
    from worker.models.loading import load_for_task
    from worker.models.tiny import build_tiny

    big = folder / "gpt2-700m"  # 2.8 GB in float32: does not fit in 2 GB
    GPT2LMHeadModel(GPT2Config(n_embd=1536, n_layer=24, n_head=16)).save_pretrained(big)
    build_tiny("gpt2", "text-generation").tokenizer.save_pretrained(big)
    free, _ = torch.cuda.mem_get_info()
    filler = torch.empty(max(free - 2 * 2**30, 0), dtype=torch.uint8, device="cuda")
    print(f"free memory now {torch.cuda.mem_get_info()[0] / 2**30:.2f} GiB")
    try:
        load_for_task(f"path:{big}", "text-generation", "cuda")
        checks.check("memory", "a model that does not fit is refused", False, "it loaded")
    except ModelLoadError as error:
        message = str(error)
        checks.check("memory", "a model that does not fit: refused before loading, one line with both sizes",
                     "the weights need" in message and "GB free" in message and "\n" not in message, message[:200])
    finally:
        del filler
        gc.collect()  # the half-moved model of the failed load
        torch.cuda.empty_cache()
    loaded = load_for_task(f"path:{big}", "text-generation", "cuda")
    checks.check("memory", "a clean load after it", next(loaded.model.parameters()).is_cuda)
    del loaded
    torch.cuda.empty_cache()


def part_freeze(checks: Checks, device: str) -> None:
    """What the worker does between jobs: freeze the heap with the model loaded, then unload it."""
    import gc
    import types
    import weakref

    import torch

    from worker.process.executor import UnitExecutor, _Model
    from worker.workloads import get_workload

    executor = UnitExecutor(types.SimpleNamespace(device=device))
    gc.collect()
    baseline = torch.cuda.memory_allocated() if device.startswith("cuda") else 0
    workload = get_workload("sentence-similarity")
    for attempt in (1, 2):
        encoder = workload.load("tiny:sentence-bert", device, {})
        weights = weakref.ref(next(encoder.parameters()))
        executor.model = _Model(attempt, "sentence-similarity", "tiny:sentence-bert", workload, {}, {},
                                pipeline=encoder)
        del encoder
        gc.freeze()
        try:
            executor.unload()
            gc.collect()
            left = (torch.cuda.memory_allocated() - baseline) if device.startswith("cuda") else 0
            checks.check("freeze", f"load, freeze, unload #{attempt}: memory back to its baseline",
                         weights() is None and left <= 2**20, f"weights {'freed' if weights() is None else 'ALIVE'}"
                         + (f", {left / 2**20:.1f} MiB above baseline" if device.startswith("cuda") else ""))
        finally:
            gc.unfreeze()


GROUP_CHILD = """
import json, sys
from pathlib import Path
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from worker.errors import CannotLoadHere
from worker.models.placement import Placement, placed
from worker.models.tiny import build_tiny
from worker.workloads import get_workload

folder = Path(sys.argv[1])
GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)  # GPT-2 small: 0.5 GB in float32, 12 layers to spread
build_tiny("gpt2", "text-generation").tokenizer.save_pretrained(folder)
workload = get_workload("text-generation")
params = {**workload.default_params, "max_new_tokens": 5}
with placed(Placement("cuda:0", 2)):  # as a worker on a group of two: cuda:0 and cuda:1 in this process
    pipe = workload.load(f"path:{folder}", "cuda:0", params)
devices = sorted({str(device) for device in (getattr(pipe.model, "hf_device_map", None) or {}).values()})
units = workload.run(pipe, ["the cat sat on the mat"] * 2, 2, params).resolved()
allocated = [torch.cuda.memory_allocated(index) for index in range(2)]
try:
    with placed(Placement("cuda:0", 2, lambda: [2**20, 2**20])):
        workload.load(f"path:{folder}", "cuda:0", params)
    refused = ""
except CannotLoadHere as error:
    refused = str(error)
print(json.dumps({"devices": devices, "tokens": units.output_tokens, "allocated": allocated, "refused": refused}))
"""


def gpu_count() -> int:
    """The machine's GPUs, from NVML (this process is pinned to one, so CUDA sees one)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


def part_group(checks: Checks, folder: Path) -> None:
    """A model over a group of the machine's first two GPUs, in a child process that sees both (as a worker given
    `--gpus 0,1` does): accelerate's device map puts its layers on both, and it generates."""
    import json
    import subprocess

    env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0,1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", GROUP_CHILD, str(folder / "group-gpt2")], env=env,
                            capture_output=True, text=True, timeout=BUDGET_S["group"] * 2)
    if not checks.check("group", "the child on two GPUs ran", result.returncode == 0,
                        " ".join(result.stderr.split())[-300:]):
        return
    found = json.loads(result.stdout.strip().splitlines()[-1])
    checks.check("group", "device_map auto puts the layers on both GPUs", len(found["devices"]) == 2
                 and all(size > 0 for size in found["allocated"]),
                 f"devices {found['devices']}, allocated {[round(a / 2**20) for a in found['allocated']]} MiB")
    checks.check("group", "the spread model generates", found["tokens"] == 2 * 5, f"{found['tokens']} tokens")
    checks.check("group", "too large for both GPUs: refused with both sizes", "2 GPUs have" in found["refused"],
                 found["refused"][:200])


# --- cells


def cell_tasks() -> dict:
    """One cell per task: AI Energy Score's smoke preset (eleven tasks, reasoning on only) plus the study's tasks it
    lacks (fill-mask, token-classification), each with its first tiny model and dataset."""
    import yaml

    aies = yaml.safe_load((ROOT / "presets" / "ai-energy-score-smoke.yaml").read_text())["tasks"]
    study = yaml.safe_load((ROOT / "presets" / "power-hungry-processing-smoke.yaml").read_text())["tasks"]
    tasks = {name: {**spec, "models": spec["models"][:1], "datasets": spec["datasets"][:1]}
             for name, spec in aies.items()}
    tasks["reasoning"]["params"] = {**tasks["reasoning"]["params"], "reasoning": "on"}
    for name in ("fill-mask", "token-classification"):
        spec = study[name]
        tasks[name] = {key: value for key, value in spec.items() if key in ("params", "models", "datasets")}
        tasks[name]["models"], tasks[name]["datasets"] = spec["models"][:1], spec["datasets"][:1]
    return tasks


def run_cells(pinning, folder: Path, name: str, queries: dict[str, int], baseline_s: float) -> tuple:
    """One local sweep of the cells through the worker's own executor; (sessions, sweep id, model devices)."""
    from db.migrate import upgrade
    from db.session import session_factory
    from scheduler.plan.submit import create_sweep
    from scheduler.spec.reading import parse_sweep
    from worker.process import executor as executor_module
    from worker.process.local import run_sweep_locally
    from worker.process.runtime import WorkerRuntime

    url = f"sqlite:///{folder}/{name}.db"
    upgrade(url)
    sessions = session_factory(url)
    tasks = {task: {**spec, "queries": queries[task]} for task, spec in cell_tasks().items()}
    data = {"name": name, "hardware_class": "gpu-check", "carbon": {"grid_intensity_g_per_kwh": 100},
            "defaults": {"repetitions": 1, "batch_size": 1, "warmup": 1}, "tasks": tasks}
    with sessions.begin() as session:
        sweep_id = create_sweep(session, parse_sweep(data, name), mode="local").id
    devices: dict[str, str] = {}
    load = executor_module.UnitExecutor.load

    def load_and_look(self, claim):  # where the loaded model's weights are: the model must be on the GPU
        answer = load(self, claim)
        if self.model is not None:
            devices[self.model.task] = model_device(self.model.pipeline)
        return answer

    executor_module.UnitExecutor.load = load_and_look
    runtime = WorkerRuntime(worker_id=pinning.worker_id, device=pinning.device, hardware_class="gpu-check",
                            sessions=sessions, gpu_ids=pinning.gpu_ids, mig_uuid=pinning.mig_uuid,
                            baseline_window_s=baseline_s)
    runtime.register()
    try:
        run_sweep_locally(sweep_id, runtime, lambda event: None)
    finally:
        executor_module.UnitExecutor.load = load
        runtime.close()
    return sessions, sweep_id, devices


def model_device(pipeline) -> str:
    """The device of the first weight found on a pipeline, encoder or diffusers pipeline."""
    import torch

    candidates = [pipeline, *vars(pipeline).values()] if hasattr(pipeline, "__dict__") else [pipeline]
    candidates += list(getattr(pipeline, "components", {}).values())
    for candidate in candidates:
        if isinstance(candidate, torch.nn.Module):
            for weight in candidate.parameters():
                return str(weight.device)
    return "?"


def windows(sessions, sweep_id: int) -> list:
    from sqlalchemy import select

    from db.models import Job, Measurement

    with sessions() as session:
        jobs = session.execute(select(Job.task, Job.status, Job.last_error).where(Job.sweep_id == sweep_id)).all()
        query = session.execute(select(Job.task, Measurement.duration_s, Measurement.n_queries,
                                       Measurement.gpu_method, Measurement.gpu_count, Measurement.cpu_method)
                                .join(Measurement, Measurement.job_id == Job.id)
                                .where(Job.sweep_id == sweep_id, Measurement.phase == "query")).all()
    return jobs, {row.task: row for row in query}


def part_cells(checks: Checks, pinning, folder: Path, cpu: bool) -> None:
    tasks = list(cell_tasks())
    if cpu:
        queries = dict.fromkeys(tasks, 1)
    else:  # calibrate: 10 queries each, then as many as make a window of WINDOW_MIN_S (with a margin)
        sessions, sweep_id, _ = run_cells(pinning, folder, "calibrate", dict.fromkeys(tasks, 10), 0.0)
        _, measured = windows(sessions, sweep_id)
        queries = {task: max(10, min(5000, int(1.3 * WINDOW_MIN_S * measured[task].n_queries
                                               / max(measured[task].duration_s, 1e-3)))) if task in measured else 50
                   for task in tasks}
    sessions, sweep_id, devices = run_cells(pinning, folder, "cells", queries, 2.0 if cpu else 5.0)
    jobs, measured = windows(sessions, sweep_id)
    want_method, want_count = ("none", 0) if cpu else ("nvml-energy-counter", 1)
    for task, status, error in sorted(jobs):
        w = measured.get(task)
        problems = [] if status == "done" else [f"status {status}: {error}"]
        if w is None:
            problems.append("no query window")
        else:
            if (w.gpu_method, w.gpu_count) != (want_method, want_count):
                problems.append(f"gpu {w.gpu_method} x{w.gpu_count}")
            if not cpu and w.duration_s < WINDOW_MIN_S:
                problems.append(f"window {w.duration_s:.1f} s < {WINDOW_MIN_S:.0f} s")
        device = devices.get(task, "?")
        if not device.startswith("cpu" if cpu else "cuda"):
            problems.append(f"model on {device}")
        detail = (f"{w.n_queries} queries in {w.duration_s:.1f} s, gpu {w.gpu_method}, cpu {w.cpu_method}, "
                  f"model on {device}") if w else ""
        checks.check("cells", task, not problems, "; ".join(problems) or detail)


# --- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="the CPU-applicable checks only (CI)")
    args = parser.parse_args()
    os.environ["WATTSWEEP_BASELINE_SETTLE_TIMEOUT_S"] = str(SETTLE_TIMEOUT_S)  # read by the settings, below

    from worker.process.pinning import apply_pinning, plan_pinning, read_gpu

    pinning = plan_pinning(gpu=None if args.cpu else args.gpu, device="cpu" if args.cpu else None,
                           hostname=socket.gethostname(), pid=os.getpid(),
                           inherited_visible=None if args.cpu else os.environ.get("CUDA_VISIBLE_DEVICES"))
    apply_pinning(pinning)  # before torch is imported
    checks = Checks(args.cpu)
    print(f"gpu_check on {pinning.device} ({'CPU mode: GPU-only parts SKIP' if args.cpu else pinning.worker_id}); "
          f"budgets {sum(BUDGET_S.values())} s in all; baseline settle timeout {SETTLE_TIMEOUT_S:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="wattsweep-gpu-check-") as scratch:
        folder = Path(scratch)
        meter = reader = None
        if not args.cpu:
            import torch

            from worker.measure.device_state import DeviceStateReader
            from worker.measure.meter import Meter

            gpu = read_gpu(pinning.gpu_index)
            checks.part("device", lambda: part_device(checks, pinning, gpu))
            try:
                reader = DeviceStateReader(pinning.gpu_index)
                meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=pinning.gpu_ids, mig_uuid=pinning.mig_uuid,
                              synchronize=torch.cuda.synchronize)
            except Exception as error:  # the counter and power parts then FAIL; the others still run
                checks.check("device", "the meter starts", False, f"{type(error).__name__}: {error}"[:300])
        else:
            checks.part("device", lambda: None)
        try:
            checks.part("counter", lambda: part_counter(checks, reader))
            checks.part("power", lambda: part_power(checks, meter, reader))
        finally:
            if meter is not None:
                meter.close()
            if reader is not None:
                reader.close()
        device = "cpu" if args.cpu else "cuda:0"
        checks.part("ttft", lambda: part_ttft(checks, device))
        checks.part("memory", lambda: part_memory(checks, folder))
        checks.part("freeze", lambda: part_freeze(checks, device))
        checks.part("cells", lambda: part_cells(checks, pinning, folder, args.cpu))
        gpus = 0 if args.cpu else gpu_count()
        if args.cpu or gpus >= 2:
            checks.part("group", lambda: part_group(checks, folder))
        else:
            print(f"== group (budget {BUDGET_S['group']} s)", flush=True)
            checks.skip("group", f"needs 2 or more GPUs, this machine has {gpus}")
    print(checks.summary(), flush=True)
    return 1 if checks.counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
