"""GPU check for the meter (run on a GPU machine; one call). Prints figures; asserts nothing.

On GPU `--gpu` (default 0), pinned the way `wattsweep worker --gpu N` pins:
1. for a tiny: BERT and a real-size random-weight BERT-base encoder, compare
   wattsweep's GPU energy for a run with a direct reading of NVML's
   total-energy counter around the same window (target: within 5%);
2. show that the pinned meter reports that GPU only (gpu_count 1, its name).

    python bench/gpu_check_meter.py --gpu 0 --seconds 20
"""

from __future__ import annotations

import argparse
import socket
import time

from worker.pinning import apply_pinning, plan_pinning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=20.0, help="target length of each measured run")
    args = parser.parse_args()
    pinning = plan_pinning(gpu=args.gpu, device=None, hostname=socket.gethostname(), pid=0)
    apply_pinning(pinning)  # before torch is imported

    import pynvml
    import torch
    from transformers import BertConfig, BertForSequenceClassification, pipeline

    from worker.datasets import load_queries
    from worker.meter import Meter
    from worker.tiny import build_tiny

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.gpu)  # physical index: NVML ignores CUDA_VISIBLE_DEVICES
    print(f"pinned: {pinning.worker_id}, torch sees {torch.cuda.device_count()} GPU(s): "
          f"{torch.cuda.get_device_name(0)}; NVML GPU {args.gpu}: {pynvml.nvmlDeviceGetName(handle)}")

    tiny = build_tiny("bert", "text-classification")
    models = {
        "tiny:bert": tiny.model,
        "bert-base (random weights)": BertForSequenceClassification(BertConfig(vocab_size=len(tiny.tokenizer))),
    }
    queries = load_queries("builtin:reviews", 2000)
    meter = Meter(grid_intensity_g_per_kwh=100.0, gpu_ids=pinning.gpu_ids, measure_power_secs=1.0,
                  synchronize=torch.cuda.synchronize)
    for label, model in models.items():
        classify = pipeline("text-classification", model=model.eval(), tokenizer=tiny.tokenizer, device=0)
        classify(queries[:50], batch_size=8)  # warm-up
        start = time.perf_counter()
        classify(queries[:200], batch_size=8)
        per_query_s = (time.perf_counter() - start) / 200
        n = max(200, int(args.seconds / per_query_s))
        batch = [queries[i % len(queries)] for i in range(n)]
        torch.cuda.synchronize()
        nvml_start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        with meter.window("query") as window:
            classify(batch, batch_size=8)
        nvml_kwh = (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - nvml_start_mj) / 3.6e9
        r = window.reading
        gap = 100 * (r.gpu_energy_kwh - nvml_kwh) / nvml_kwh if nvml_kwh else float("nan")
        print(f"{label}: {n} queries in {r.duration_s:.1f} s; wattsweep GPU {r.gpu_energy_kwh:.3e} kWh "
              f"({r.gpu_method}), NVML counter {nvml_kwh:.3e} kWh, difference {gap:+.2f}% (target within 5%); "
              f"meter sees gpu_count={r.gpu_count} model={r.gpu_model!r}; CPU {r.cpu_method}, total "
              f"{r.energy_kwh:.3e} kWh")
    meter.close()


if __name__ == "__main__":
    main()
