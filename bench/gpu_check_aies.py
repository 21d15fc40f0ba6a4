"""GPU check for issue 13 (run on a GPU machine; one call). Prints figures; asserts nothing.

Runs presets/ai-energy-score-smoke.yaml (AI Energy Score's eleven tasks, tiny
models, reasoning on and off) on one GPU, pinned the way `wattsweep worker
--gpu N` pins, through the same execute_job path as every worker, into a
throw-away SQLite file; with --real-size also one real-size random-weight
architecture per new task: Whisper-base-sized speech recognition, a BERT-base
sentence-transformers encoder, and a Qwen3-0.6B-shaped chat model for
reasoning (up to --reasoning-tokens new tokens). Reports per cell: kWh per
1,000 queries, p95 and p50 time per query, time to first token, the GPU's
share of the energy, and the stars by GPU energy.

    python bench/gpu_check_aies.py --gpu 0 --queries 20 --real-size
    python bench/gpu_check_aies.py --cpu --queries 2     # dry run of the script itself, no GPU

Nothing is downloaded (tiny: and path: models, builtin: data).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "presets" / "ai-energy-score-smoke.yaml"


def real_size_models(folder: Path) -> dict[str, str]:
    """Random-weight models of real size saved as path: folders, with the tiny tokenizers and processors."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import (
        BertConfig,
        BertModel,
        Qwen3Config,
        Qwen3ForCausalLM,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    from worker.models.tiny import build_tiny

    whisper = build_tiny("whisper", "automatic-speech-recognition")
    tiny = whisper.model.config
    special = dict(decoder_start_token_id=tiny.decoder_start_token_id, eos_token_id=tiny.eos_token_id,
                   pad_token_id=tiny.pad_token_id, bos_token_id=tiny.bos_token_id)
    base = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=tiny.vocab_size, num_mel_bins=80, d_model=512, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
        max_source_positions=1500, max_target_positions=448, begin_suppress_tokens=None, suppress_tokens=None,
        **special))
    base.generation_config = whisper.model.generation_config
    base.save_pretrained(folder / "whisper-base")
    whisper.tokenizer.save_pretrained(folder / "whisper-base")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder / "whisper-base")  # 30 s windows

    sbert = build_tiny("sentence-bert", "sentence-similarity")
    encoder_dir = folder / "bert-base-encoder"
    BertModel(BertConfig(vocab_size=len(sbert.tokenizer))).save_pretrained(encoder_dir)
    sbert.tokenizer.save_pretrained(encoder_dir)
    transformer = models.Transformer(str(encoder_dir), max_seq_length=256)
    SentenceTransformer(modules=[transformer, models.Pooling(768, pooling_mode="mean")]).save(
        str(folder / "sentence-bert-base"))

    chat = build_tiny("gpt2", "reasoning")
    Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(chat.tokenizer), hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)).save_pretrained(
        folder / "qwen3-0.6b-shape")
    chat.tokenizer.save_pretrained(folder / "qwen3-0.6b-shape")  # carries the chat template with both switches
    return {name: f"path:{folder / name}" for name in ("whisper-base", "sentence-bert-base", "qwen3-0.6b-shape")}


def sweep_data(queries: int, real: dict[str, str] | None, reasoning_tokens: int) -> dict:
    import yaml

    data = yaml.safe_load(SMOKE.read_text())
    data["name"] = "gpu-check-aies"
    data["hardware_class"] = "gpu-check"
    data["defaults"].update(queries=queries, warmup=3)
    if real:
        tasks = data["tasks"]
        tasks["automatic-speech-recognition"]["models"].append(real["whisper-base"])
        tasks["sentence-similarity"]["models"].append(real["sentence-bert-base"])
        tasks["reasoning"]["models"].append(real["qwen3-0.6b-shape"])
        tasks["reasoning"]["params"]["max_new_tokens"] = reasoning_tokens
    return data


def report(sessions, sweep, wall_s: float) -> None:
    from scheduler.report.data import ReportOptions, gather

    with sessions() as session:
        data = gather(session, sweep, ReportOptions())
    stars = {(r["task"], r["model"], r["cell_key"]): r["stars"] for r in data.ratings}
    print(f"{'task':<30}{'model':<34}{'cell':<16}{'kWh/1k':>11}{'GPU %':>7}{'p95 s':>9}{'p50 s':>9}"
          f"{'TTFT s':>9}{'stars':>6}")
    total = gpu = 0.0
    for m in data.models:
        energy, gpu_energy = m["kwh_per_1k_mean"] or 0.0, m["gpu_kwh_per_1k_mean"] or 0.0
        total, gpu = total + energy, gpu + gpu_energy
        name = m["model"] if len(m["model"]) <= 32 else "..." + m["model"][-29:]

        def g(value):
            return f"{value:.3g}" if value is not None else "-"

        print(f"{m['task']:<30}{name:<34}{(m['cell_key'] or '-'):<16}{energy:>11.3e}"
              f"{100 * gpu_energy / energy if energy else float('nan'):>6.1f}%{g(m['latency_p95_s_mean']):>9}"
              f"{g(m['latency_p50_s_mean']):>9}{g(m['ttft_p50_s_mean']):>9}"
              f"{g(stars.get((m['task'], m['model'], m['cell_key'] or ''))):>6}")
    print(f"sum over cells: {total:.3e} kWh per 1,000 queries, GPU share {100 * gpu / total if total else 0:.1f}%; "
          f"sweep wall time {wall_s:.0f} s; failed jobs: {data.progress.get('jobs_failed')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU (checks the script, not a GPU)")
    parser.add_argument("--queries", type=int, default=20, help="measured queries per run (the preset has 2)")
    parser.add_argument("--real-size", action="store_true", help="add real-size random-weight models")
    parser.add_argument("--reasoning-tokens", type=int, default=256, help="max_new_tokens of the real-size chat model")
    parser.add_argument("--baseline-s", type=float, default=10.0, help="idle baseline window (0: none)")
    args = parser.parse_args()

    from worker.process.pinning import apply_pinning, plan_pinning, read_gpu

    pinning = plan_pinning(gpu=None if args.cpu else args.gpu, device="cpu" if args.cpu else None,
                           hostname=socket.gethostname(), pid=0)
    apply_pinning(pinning)  # before torch is imported

    from db.migrate import upgrade
    from db.models import Sweep
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
        spec = parse_sweep(sweep_data(args.queries, real, args.reasoning_tokens), "gpu-check-aies")
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
        with sessions() as session:
            sweep = session.get(Sweep, sweep_id)
            session.expunge(sweep)
        report(sessions, sweep, time.perf_counter() - start)


if __name__ == "__main__":
    main()
