"""`wattsweep slurm`: the batch script it writes, and the bad input it refuses (no Slurm needed here).

That the script really runs workers under Slurm is tests/slurm's business;
these check its text, that bash parses it, and every one-line refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scheduler.slurm import SlurmOptionError, SlurmOptions, check, render, time_limit_s

URLS = {"WATTSWEEP_DATABASE_URL": "postgresql://app:s3cret-db@head/wattsweep",
        "WATTSWEEP_BROKER_URL": "redis://:s3cret-redis@head:6379/0"}


def cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTSWEEP_") and k != "HF_HOME"}
    return subprocess.run([sys.executable, "-m", "scheduler", "slurm", *args], env=base | (env if env is not None
                          else URLS), capture_output=True, text=True, timeout=120, cwd=cwd)


def gpu(**changes) -> SlurmOptions:
    return SlurmOptions(**{"queue": "a100", "wattsweep": "/opt/venv/bin/wattsweep", "gpus_per_node": 4} | changes)


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_gpu_script_asks_for_gres_one_task_per_gpu_and_a_signal_before_the_limit():
    script = render(gpu(nodes=2, time="12:00:00", partition="gpu", account="lab", sbatch=("--mem=64G",),
                        hf_home="/shared/hf", env=(("HF_DATASETS_CACHE", "/shared/hf/datasets"),)))
    assert sbatch_lines(script) == [
        "--job-name=wattsweep-a100", "--nodes=2", "--ntasks-per-node=4", "--gres=gpu:4", "--time=12:00:00",
        "--partition=gpu", "--account=lab", "--signal=B:TERM@900", "--requeue", "--open-mode=append",
        "--output=%x-%j.out", "--export=ALL", "--mem=64G"]
    # Slurm binds one GPU to each task; the worker takes the one entry of its task's CUDA_VISIBLE_DEVICES.
    assert "srun --ntasks-per-node=4 --kill-on-bad-exit=0 --gpus-per-task=1 bash" in script
    assert "worker --queue a100 --gpu 0 --name" in script
    assert "export HF_HOME=/shared/hf" in script and "export HF_HUB_OFFLINE=1" in script
    assert "export HF_DATASETS_CACHE=/shared/hf/datasets" in script
    assert 'scancel --signal=TERM "$SLURM_JOB_ID"' in script and "trap 'stop SIGTERM' TERM" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_cpu_script_runs_workers_per_node_without_gres():
    script = render(SlurmOptions(queue="cpu-x", wattsweep="python -m scheduler", device="cpu", workers_per_node=3,
                                 cpus_per_worker=4, requeue=False, hub_offline=False))
    lines = sbatch_lines(script)
    assert "--ntasks-per-node=3" in lines and "--cpus-per-task=4" in lines and "--no-requeue" in lines
    assert not any("gres" in line for line in lines) and "HF_HUB_OFFLINE" not in script
    assert "--device cpu" in script and "export OMP_NUM_THREADS=4" in script
    assert "srun --ntasks-per-node=3 --kill-on-bad-exit=0 --cpus-per-task=4 bash" in script
    assert "wattsweep=(python -m scheduler)" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_a_gpu_type_goes_into_the_node_and_the_task_requests():
    script = render(gpu(gpu_type="a100", gpus_per_node=8, gpus_per_worker=2))
    assert "#SBATCH --gres=gpu:a100:8" in script and "--gpus-per-task=a100:2 bash" in script


def test_gpu_groups_are_one_task_each_bound_to_its_gpus_by_slurm():
    script = render(gpu(gpus_per_node=8, gpus_per_worker=4, nodes=2, cpus_per_worker=16))
    lines = sbatch_lines(script)
    assert "--ntasks-per-node=2" in lines and "--gres=gpu:8" in lines and "--cpus-per-task=16" in lines
    assert "2 GPU worker(s) of 4 GPU(s) per node" in script
    assert "srun --ntasks-per-node=2 --kill-on-bad-exit=0 --cpus-per-task=16 --gpus-per-task=4 bash" in script
    # The worker takes every GPU Slurm bound to its task: entries 0-3 of its own CUDA_VISIBLE_DEVICES.
    assert "worker --queue a100 --gpus 0,1,2,3 --name" in script and "--gpu 0" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_groups_that_split_when_drained_pass_the_option_to_each_tasks_worker():
    script = render(gpu(gpus_per_node=8, gpus_per_worker=4, split_when_drained=True))
    assert "worker --queue a100 --gpus 0,1,2,3 --split-when-drained --name" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "--split-when-drained" not in render(gpu(gpus_per_node=8, gpus_per_worker=4))


def test_array_script_is_one_node_per_task_and_until_done_watches_the_sweep():
    script = render(gpu(array="0-7%2", until_done="study"))
    lines = sbatch_lines(script)
    assert "--array=0-7%2" in lines and "--nodes=1" in lines and "--output=%x-%A_%a.out" in lines
    assert '"${wattsweep[@]}" status study --watch' in script and 'stop "sweep study finished"' in script


@pytest.mark.parametrize("value, seconds", [("90", 5400), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400),
                                            ("1-02:30", 95400), ("0-00:00:30", 30), ("0", None),
                                            ("UNLIMITED", None)])
def test_slurm_time_limits(value, seconds):
    assert time_limit_s(value) == seconds


BAD = {
    "negative GPUs": (dict(gpus_per_node=-1), "--gpus-per-node -1: must be 1 or more"),
    "zero nodes": (dict(nodes=0), "--nodes 0: must be 1 or more"),
    "unknown device": (dict(device="tpu"), "--device 'tpu': use 'gpu'"),
    "gpu type with a colon": (dict(gpu_type="a100:2"), "--gpu-type 'a100:2': a GRES type name"),
    "workers per node on GPUs": (dict(workers_per_node=2), "--workers-per-node is for --device cpu"),
    "groups that do not divide": (dict(gpus_per_node=8, gpus_per_worker=3),
                                  "--gpus-per-worker 3 must divide --gpus-per-node 8"),
    "group larger than the node": (dict(gpus_per_node=4, gpus_per_worker=8),
                                   "--gpus-per-worker 8 must divide --gpus-per-node 4"),
    "zero GPUs per worker": (dict(gpus_per_worker=0), "--gpus-per-worker 0: must be 1 or more"),
    "split without groups": (dict(split_when_drained=True), "--split-when-drained splits groups: give "
                                                            "--gpus-per-worker 2 or more"),
    "groups of CPU workers": (dict(device="cpu", gpus_per_node=None, workers_per_node=2, gpus_per_worker=2),
                              "--gpus-per-worker is for GPU workers"),
    "nodes and array": (dict(nodes=2, array="0-3"), "give --nodes or --array, not both"),
    "bad array": (dict(array="0-3x"), "--array '0-3x': use Slurm's syntax"),
    "bad time": (dict(time="soon"), "--time 'soon': use a Slurm time limit"),
    "grace past the limit": (dict(time="10", grace_s=900), "--grace 900 s must be shorter than --time 10 (600 s)"),
    "grace too long": (dict(grace_s=70000), "--grace 70000: seconds between 1 and 65535"),
    "partition with a space": (dict(partition="gpu; rm"), "--partition 'gpu; rm': no spaces"),
    "sbatch line": (dict(sbatch=("mem=4G",)), "--sbatch 'mem=4G': one sbatch option per value"),
    "URL in --env": (dict(env=(("WATTSWEEP_DATABASE_URL", "x"),)), "never written into the script"),
    "credential in --env": (dict(env=(("HF_TOKEN", "hf_x"),)), "--env HF_TOKEN: looks like a credential"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_options_name_the_option(case):
    changes, message = BAD[case]
    with pytest.raises(SlurmOptionError) as error:
        check(gpu(**changes))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_cpu_workers_need_a_count():
    with pytest.raises(SlurmOptionError, match="--workers-per-node N is required"):
        check(SlurmOptions(queue="cpu", wattsweep="wattsweep", device="cpu"))


def test_the_urls_are_read_at_run_time_never_written(tmp_path):
    out = tmp_path / "workers.sbatch"
    result = cli("--queue", "a100", "--gpus-per-node", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    script = out.read_text()
    assert "s3cret" not in script and "@head" not in script
    assert ': "${WATTSWEEP_DATABASE_URL:?' in script and ': "${WATTSWEEP_BROKER_URL:?' in script
    assert os.access(out, os.X_OK) and f"sbatch {out}" in result.stdout
    # The script refuses to start workers without them (and says which).
    run = subprocess.run(["bash", str(out)], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"]})
    assert run.returncode != 0 and "WATTSWEEP_DATABASE_URL: is not set" in run.stderr


@pytest.mark.parametrize("args, env, message", [
    (["--gpus-per-node", "-2"], URLS, "--gpus-per-node -2: must be 1 or more"),
    (["--gpus-per-node", "2"], {}, "WATTSWEEP_DATABASE_URL is not set"),
    (["--gpus-per-node", "2"], {"WATTSWEEP_DATABASE_URL": URLS["WATTSWEEP_DATABASE_URL"]},
     "WATTSWEEP_BROKER_URL is not set"),
    (["--gpus-per-node", "2"], URLS | {"WATTSWEEP_DATABASE_URL": "sqlite:///w.db"}, "not SQLite"),
    (["--gpus-per-node", "2", "--submit"], URLS | {"PATH": "/nonexistent"}, "--submit: sbatch is not on PATH"),
    (["--device", "cpu"], URLS, "--workers-per-node N is required with --device cpu"),
    (["--gpus-per-node", "2", "--env", "NOEQUALS"], URLS, "--env 'NOEQUALS': expected NAME=VALUE"),
    (["--gpus-per-node", "8", "--gpus-per-worker", "3"], URLS, "--gpus-per-worker 3 must divide --gpus-per-node 8"),
])
def test_bad_input_is_one_line_and_exit_2(args, env, message, tmp_path):
    result = cli("--queue", "a100", *args, "--out", str(tmp_path / "s.sbatch"), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "s.sbatch").exists()  # nothing written
