"""GPU check for the meter (run on a GPU machine; one call, about a minute). Prints figures; asserts nothing.

On GPU `--gpu` (default 0), pinned the way `wattsweep worker --gpu N` pins:
1. torch's device UUID against the UUID NVML meters (the worker refuses to run when they differ);
2. an idle baseline window: the GPU's temperature, SM clock, power limit and
   throttle reasons before and after it, and its idle power;
3. for a tiny: BERT and a real-size random-weight BERT-base encoder, wattsweep's
   GPU energy for a run against a direct read of NVML's total-energy counter
   around the same window (target: within 2%), with the device's temperature
   and clocks at the window's start and end, and what the reading says it
   measured (gpu_count 1, the GPU's own name and UUID, its flags).

    python bench/gpu_check_meter.py --gpu 0 --seconds 20

Without CUDA, on the simulated node of the tests (WATTSWEEP_SIMULATED_GPU=1,
the fake pynvml first on the path), the model runs on the CPU and the same
comparison runs against the fake counters: that checks this script's logic.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.process.pinning import apply_pinning, plan_pinning  # noqa: E402

TARGET = 0.02


def _n(value, unit: str) -> str:
    return f"{value:.0f} {unit}" if value is not None else f"? {unit}"


def describe_state(state) -> str:
    from worker.measure.device_state import throttle_reason_names

    if state is None:
        return "no device state"
    reasons = ",".join(throttle_reason_names(state.throttle_reasons)) or "none"
    return (f"{_n(state.temperature_c, 'C')}, SM {_n(state.sm_clock_mhz, 'MHz')}, limit "
            f"{_n(state.power_limit_w, 'W')}, power {_n(state.power_w, 'W')}, throttle {reasons}")


def window_states(r) -> str:
    parts = []
    for when in ("start", "end"):
        temperature, clock = getattr(r, f"gpu_temperature_{when}_c"), getattr(r, f"gpu_sm_clock_{when}_mhz")
        limit, throttle = getattr(r, f"gpu_power_limit_{when}_w"), getattr(r, f"gpu_throttle_{when}")
        parts.append(f"{when} {_n(temperature, 'C')} / {_n(clock, 'MHz')} / limit {_n(limit, 'W')} / "
                     f"throttle 0x{throttle or 0:x}")
    return "; ".join(parts)


def compare_to_counter(meter, reader, work, label: str) -> float:
    """Run `work` in a meter window between two direct reads of the NVML counter; print both; return the gap."""
    before_mj = reader.energy_mj()
    with meter.window("query") as window:
        work()
    after_mj = reader.energy_mj()
    r = window.reading
    if before_mj is None or after_mj is None:
        print(f"{label}: this GPU has no total-energy counter (wattsweep used {r.gpu_method}); nothing to compare")
        return float("nan")
    direct_kwh = (after_mj - before_mj) / 3.6e9
    gap = (r.gpu_energy_kwh - direct_kwh) / direct_kwh if direct_kwh else float("nan")
    verdict = "ok" if abs(gap) <= TARGET else "OUTSIDE TARGET"
    print(f"{label}: {r.duration_s:.1f} s; wattsweep GPU {r.gpu_energy_kwh:.4e} kWh ({r.gpu_method}, "
          f"{r.gpu_power_w:.0f} W), NVML counter {direct_kwh:.4e} kWh, difference {100 * gap:+.2f}% "
          f"(target within {100 * TARGET:.0f}%: {verdict})")
    print(f"  window device state: {window_states(r)}")
    print(f"  reading: gpu_count={r.gpu_count} model={r.gpu_model!r} uuid={r.gpu_uuid} flags={r.flags}; "
          f"CPU {r.cpu_method}, node-wide total {r.energy_kwh:.3e} kWh")
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=20.0, help="target length of each measured run")
    parser.add_argument("--baseline-s", type=float, default=10.0, help="length of the idle baseline window")
    parser.add_argument("--tiny-only", action="store_true", help="skip BERT-base (a quick check of the logic)")
    args = parser.parse_args()
    pinning = plan_pinning(gpu=args.gpu, device=None, hostname=socket.gethostname(), pid=0,
                           inherited_visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
    apply_pinning(pinning)  # before torch is imported

    import torch
    from transformers import BertConfig, BertForSequenceClassification, pipeline

    from worker.data.datasets import load_queries
    from worker.measure.device_state import DeviceStateReader
    from worker.measure.meter import Meter
    from worker.models.tiny import build_tiny
    from worker.process.pinning import check_torch_device, read_gpu, torch_device_uuid

    simulated = not torch.cuda.is_available() and os.environ.get("WATTSWEEP_SIMULATED_GPU") == "1"
    gpu = read_gpu(pinning.gpu_index)
    print(f"pinned: {pinning.worker_id}, NVML GPU {pinning.gpu_index}: {gpu['name']} {gpu['uuid']} "
          f"(driver {gpu['driver']}, CUDA {gpu['cuda']}){' [simulated node: model on the CPU]' if simulated else ''}")
    if not simulated:
        torch_uuid = torch_device_uuid()
        check_torch_device(pinning, gpu["uuid"], torch_uuid)  # raises, as the worker does, when they differ
        print(f"torch computes on {torch.cuda.get_device_name(0)} {torch_uuid}: the GPU NVML meters (ok)")
    synchronize = None if simulated else torch.cuda.synchronize
    meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=pinning.gpu_ids, mig_uuid=pinning.mig_uuid,
                  synchronize=synchronize, extra_flags=("simulated-gpu",) if simulated else ())
    reader = DeviceStateReader(pinning.gpu_index)
    try:
        with meter.window("warm-up"):  # CodeCarbon's first task also counts its own set-up
            pass
        before = reader.read()
        with meter.window("idle") as idle:
            time.sleep(args.baseline_s)
        after = reader.read()
        print(f"baseline ({idle.reading.duration_s:.1f} s idle): GPU {idle.reading.gpu_power_w:.1f} W; "
              f"before: {describe_state(before)}; after: {describe_state(after)}")

        tiny = build_tiny("bert", "text-classification")
        models = {"tiny:bert": tiny.model}
        if not args.tiny_only:
            models["bert-base (random weights)"] = BertForSequenceClassification(
                BertConfig(vocab_size=len(tiny.tokenizer)))
        queries = load_queries("builtin:reviews", 2000)
        device = "cpu" if simulated else 0
        gaps = []
        for label, model in models.items():
            classify = pipeline("text-classification", model=model.eval(), tokenizer=tiny.tokenizer, device=device)
            classify(queries[:50], batch_size=8)  # warm-up
            start = time.perf_counter()
            classify(queries[:100], batch_size=8)
            per_query_s = (time.perf_counter() - start) / 100
            n = max(100, int(args.seconds / per_query_s))
            batch = [queries[i % len(queries)] for i in range(n)]
            print(f"{label}: {n} queries")
            gaps.append(compare_to_counter(meter, reader, lambda b=batch, c=classify: c(b, batch_size=8), label))
            print(f"  device now: {describe_state(reader.read())}")
        worst = max((abs(g) for g in gaps if g == g), default=float("nan"))
        print(f"largest difference from the NVML counter: {100 * worst:.2f}% (target within {100 * TARGET:.0f}%)")
    finally:
        reader.close()
        meter.close()


if __name__ == "__main__":
    main()
