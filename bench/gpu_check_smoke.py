"""GPU check for issue 6 (run on a GPU machine; one call). Prints figures; asserts nothing.

Runs presets/power-hungry-processing-smoke.yaml (ten tasks, task-specific and
zero-shot tiny models) on one GPU, pinned the way `wattsweep worker --gpu N`
pins, through the same execute_job path as every worker, into a throw-away
SQLite file. With --real-size it also runs one real-size random-weight
architecture per modality (BERT-base text classification, ViT-base image
classification, GPT-2-small generation and zero-shot, Stable Diffusion's UNet
at 512 px is left out: minutes per image). Reports, per task and model kind:
kWh per 1,000 queries, the GPU's share of the energy, and how it was measured.

    python bench/gpu_check_smoke.py --gpu 0 --queries 20 --real-size
    python bench/gpu_check_smoke.py --cpu --queries 2     # dry run of the script itself, no GPU

Nothing is downloaded (tiny: and path: models, builtin: data): the GPU node
needs no Hub access.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "presets" / "power-hungry-processing-smoke.yaml"


def real_size_models(folder: Path) -> dict[str, str]:
    """Random-weight models of real size saved as path: folders, with the tiny tokenizers and processors."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    from worker.models.tiny import build_tiny

    bert = build_tiny("bert", "text-classification")
    BertForSequenceClassification(BertConfig(vocab_size=len(bert.tokenizer), num_labels=2)).save_pretrained(
        folder / "bert-base")
    bert.tokenizer.save_pretrained(folder / "bert-base")
    ViTForImageClassification(ViTConfig(num_labels=1000)).save_pretrained(folder / "vit-base")
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder / "vit-base")
    gpt2 = build_tiny("gpt2", "text-generation")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(gpt2.tokenizer), bos_token_id=0, eos_token_id=0, pad_token_id=0)
                    ).save_pretrained(folder / "gpt2-small")
    gpt2.tokenizer.save_pretrained(folder / "gpt2-small")
    return {name: f"path:{folder / name}" for name in ("bert-base", "vit-base", "gpt2-small")}


def sweep_data(queries: int, real: dict[str, str] | None) -> dict:
    import yaml

    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = "gpu-check-smoke"
    data["hardware_class"] = "gpu-check"
    data["defaults"].update(queries=queries, warmup=5)
    if real:
        tasks = data["tasks"]
        tasks["text-classification"]["models"].append(real["bert-base"])
        tasks["image-classification"]["models"].append(real["vit-base"])
        tasks["text-generation"]["models"].append(real["gpt2-small"])
        tasks["summarization"]["zero_shot"]["models"].append(real["gpt2-small"])
    return data


def report(sessions, sweep_id: int, wall_s: float) -> None:
    from sqlalchemy import func, select

    from db.models import Job, Measurement

    rows = []
    with sessions() as session:
        failed = session.execute(select(Job.task, Job.model, Job.last_error)
                                 .where(Job.sweep_id == sweep_id, Job.status != "done")).all()
        query = (select(Job.task, Job.model_kind, Job.model, func.sum(Measurement.energy_kwh),
                        func.sum(Measurement.gpu_energy_kwh), func.sum(Measurement.n_queries),
                        func.max(Measurement.gpu_method), func.max(Measurement.cpu_method),
                        func.sum(Measurement.duration_s))
                 .join(Measurement, Measurement.job_id == Job.id)
                 .where(Job.sweep_id == sweep_id, Measurement.phase == "query")
                 .group_by(Job.task, Job.model_kind, Job.model).order_by(Job.task, Job.model_kind, Job.model))
        rows = session.execute(query).all()
    print(f"{'task':<22}{'kind':<15}{'model':<34}{'kWh/1k queries':>15}{'GPU share':>11}{'s/query':>10}  methods")
    total, gpu = 0.0, 0.0
    for task, kind, model, energy, gpu_energy, n, gpu_method, cpu_method, duration in rows:
        total, gpu = total + energy, gpu + gpu_energy
        share = 100 * gpu_energy / energy if energy else float("nan")
        name = model if len(model) <= 32 else "..." + model[-29:]
        print(f"{task:<22}{kind:<15}{name:<34}{energy * 1000 / n:>15.3e}{share:>10.1f}%{duration / n:>10.4f}  "
              f"gpu={gpu_method} cpu={cpu_method}")
    print(f"all query windows: {total:.3e} kWh, GPU share {100 * gpu / total if total else float('nan'):.1f}%; "
          f"sweep wall time {wall_s:.0f} s")
    for task, model, error in failed:
        print(f"NOT DONE: {task} / {model}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU (checks the script, not a GPU)")
    parser.add_argument("--queries", type=int, default=20, help="measured queries per run (the preset has 2)")
    parser.add_argument("--real-size", action="store_true", help="add real-size random-weight models")
    parser.add_argument("--baseline-s", type=float, default=10.0, help="idle baseline window (0: none)")
    args = parser.parse_args()

    from worker.process.pinning import apply_pinning, plan_pinning, read_gpu

    pinning = plan_pinning(gpu=None if args.cpu else args.gpu, device="cpu" if args.cpu else None,
                           hostname=socket.gethostname(), pid=0)
    apply_pinning(pinning)  # before torch is imported

    from db.migrate import upgrade
    from db.session import session_factory
    from scheduler.plan.submit import create_sweep
    from scheduler.spec.reading import parse_sweep
    from worker.process.local import run_sweep_locally
    from worker.process.runtime import WorkerRuntime

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/gpu-check.db"
        upgrade(url)
        sessions = session_factory(url)
        real = real_size_models(Path(folder)) if args.real_size else None
        spec = parse_sweep(sweep_data(args.queries, real), "gpu-check")
        with sessions.begin() as session:
            sweep_id = create_sweep(session, spec, mode="local").id
        runtime = WorkerRuntime(worker_id=pinning.worker_id, device=pinning.device, hardware_class="gpu-check",
                                sessions=sessions, gpu_ids=pinning.gpu_ids, baseline_window_s=args.baseline_s)
        gpu = read_gpu(pinning.gpu_index) if pinning.gpu_index is not None else None
        runtime.register(gpu=gpu)
        print(f"pinned {pinning.worker_id} on {pinning.device}: {gpu or 'no GPU (dry run)'}")
        start = time.perf_counter()
        try:
            run_sweep_locally(sweep_id, runtime,
                              lambda event: print(f"  {event.kind}: {event.task} / {event.model} {event.detail}",
                                                  flush=True) if event.kind != "run" else None)
        finally:
            runtime.close()
        report(sessions, sweep_id, time.perf_counter() - start)


if __name__ == "__main__":
    main()
