"""A real vLLM (CPU build) serving a tiny random-weight Llama, measured by wattsweep's own worker (local mode).

Each engine start costs tens of seconds on two cores, so the module runs one sweep (two loads, one engine kept
across both jobs) and takes several checks from it; the engine is also killed in the middle of that sweep's first
measured run, as an engine that dies mid-run would be.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.engines.conftest import engine_pids, engine_ports, rows, run_sweep, wait_for
from worker.engines.figures import CLIENT_LATENCIES
from worker.engines.guard import group_alive
from worker.engines.lateness import FLAG, ITL_AGREEMENT
from worker.engines.metrics import parse

pytestmark = pytest.mark.engines
ROOT = Path(__file__).parents[2]
MAX_NEW_TOKENS = 24


def smoke_sweep(tmp: Path, **changes) -> Path:
    """presets/serving-smoke.yaml (the preset the README points to), with `changes` to its task."""
    spec = yaml.safe_load((ROOT / "presets" / "serving-smoke.yaml").read_text())
    spec["tasks"]["text-generation"].update(changes)
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def kill_engine_mid_run(log_dir: Path, after_requests: int, done: dict) -> None:
    """Once the first engine has answered `after_requests` requests (warm-up included), SIGKILL its group."""
    port = wait_for(lambda: engine_ports(log_dir), 300)
    if not port:
        return
    url = f"http://127.0.0.1:{port[0]}/metrics"

    def answered() -> bool:
        try:
            return parse(httpx.get(url, timeout=2).text).get("vllm:request_success_total", 0) >= after_requests
        except Exception:
            return False

    if wait_for(answered, 300, poll_s=0.1):
        pids = engine_pids(port[0])
        for pid in pids:
            os.killpg(pid, signal.SIGKILL)
        done["killed"] = pids


@pytest.fixture(scope="module")
def served(tmp_path_factory, vllm_command, tiny_llama):
    tmp = tmp_path_factory.mktemp("served")
    log_dir, database = tmp / "engine-logs", tmp / "wattsweep.db"
    sweep = smoke_sweep(tmp)
    killed: dict = {}
    spec = yaml.safe_load(sweep.read_text())
    warmup = spec["defaults"]["warmup"]
    killer = threading.Thread(target=kill_engine_mid_run, args=(log_dir, warmup + 40, killed), daemon=True)
    killer.start()
    started = time.monotonic()
    result = run_sweep(sweep, database, vllm_command=vllm_command, log_dir=log_dir)
    killer.join(timeout=5)
    return {"result": result, "database": database, "log_dir": log_dir, "killed": killed,
            "wall_s": time.monotonic() - started, "queries": spec["defaults"]["queries"]}


def test_a_sweep_at_two_concurrencies_stores_each_runs_serving_figures(served):
    assert served["result"].returncode == 0, served["result"].stdout[-3000:] + served["result"].stderr[-3000:]
    database, queries = served["database"], served["queries"]
    jobs = rows(database, "SELECT * FROM jobs ORDER BY concurrency")
    assert [(j["status"], j["engine"], j["concurrency"]) for j in jobs] == [("done", "vllm", 1), ("done", "vllm", 8)]
    for job in jobs:
        assert job["engine_version"] == "0.32.0"
        command = json.loads(job["engine_args"])
        assert "--enforce-eager" in command
        assert command[command.index("--max-num-seqs") + 1] == "16"
        assert Path(job["engine_log"]).exists()
    figures = rows(database, "SELECT s.*, m.output_tokens AS window_tokens, m.started_at AS window_start, "
                             "m.ended_at AS window_end, m.flags AS window_flags, m.ttft_p50_s AS window_ttft_p50_s, "
                             "m.latency_p50_s AS window_latency_p50_s FROM serving_runs s "
                             "JOIN measurements m ON m.shard_id = s.shard_id AND m.phase = 'query' "
                             "ORDER BY s.concurrency")
    assert [f["concurrency"] for f in figures] == [1, 8]
    for run in figures:
        # token counts are the engine's usage, and fixed: every request generated exactly max_new_tokens
        assert run["requests"] == queries and run["failed_requests"] == 0
        assert run["output_tokens"] == run["window_tokens"] == queries * MAX_NEW_TOKENS
        assert "length-mismatch" not in (run["window_flags"] or "")
        latencies = json.loads(run["request_latencies"])
        assert len(latencies) == queries
        assert all(r["ttft_s"] > 0 and r["e2e_s"] >= r["ttft_s"] and r["output_tokens"] == MAX_NEW_TOKENS
                   for r in latencies)
        for name in ("throughput_output_tokens_per_s", "engine_ttft_mean_s", "engine_itl_mean_s"):
            assert run[name] > 0, name
        check_client_latencies(run)
        # the steady part lies inside the run's window
        assert "no-steady-state" not in (run["flags"] or "")
        assert run["window_start"] <= run["steady_started_at"] < run["steady_ended_at"] <= run["window_end"]
    cells = rows(database, "SELECT concurrency, kwh_per_output_token, kwh_per_request, steady_share FROM v_serving "
                           "ORDER BY concurrency")
    assert all(c["kwh_per_output_token"] > 0 and 0 < c["steady_share"] <= 1 for c in cells)
    # batching: eight requests in flight cost less energy per output token than one
    assert cells[1]["kwh_per_output_token"] < cells[0]["kwh_per_output_token"], [dict(c) for c in cells]


def check_client_latencies(run) -> None:
    """On two busy cores the client may wait for a core behind vLLM and read chunks late and together
    (worker.engines.lateness): then the run is flagged and stores none of the latencies it read (nor does its
    window); otherwise each is a measurement, the gaps none of them 0 at the median, and the client's mean gap
    agrees with the engine's own (the rule's second half, end to end)."""
    late = FLAG in (run["flags"] or "").split(",")
    if late:
        assert all(run[name] is None for name in CLIENT_LATENCIES), dict(run)
    else:
        assert all(run[name] > 0 for name in CLIENT_LATENCIES), dict(run)
        assert run["itl_p50_s"] <= run["itl_p99_s"]
        assert run["client_itl_mean_s"] >= ITL_AGREEMENT * run["engine_itl_mean_s"]
    if "window_ttft_p50_s" in run.keys():
        assert (run["window_ttft_p50_s"] is None and run["window_latency_p50_s"] is None) == late
        assert FLAG not in (run["window_flags"] or "")  # the meter is not the client: its window is not flagged


def test_an_engine_killed_mid_run_fails_the_unit_with_its_log_and_the_retry_stores_it_once(served):
    assert served["killed"], "the engine was never killed: the sweep ended first"
    database = served["database"]
    jobs = rows(database, "SELECT id, last_error, status FROM jobs WHERE concurrency = 1")
    assert jobs[0]["status"] == "done"
    assert "engine died during the run" in jobs[0]["last_error"]
    units = rows(database, f"SELECT attempts, status FROM shards WHERE job_id = {jobs[0]['id']}")
    assert [(u["attempts"], u["status"]) for u in units] == [(2, "done")]
    stored = rows(database, f"SELECT COUNT(*) AS n FROM serving_runs WHERE job_id = {jobs[0]['id']}")
    windows = rows(database, f"SELECT COUNT(*) AS n FROM measurements WHERE job_id = {jobs[0]['id']} "
                             "AND phase = 'query'")
    assert stored[0]["n"] == windows[0]["n"] == 1


def test_no_engine_is_left_after_the_sweep_and_the_two_loads_shared_one_start(served):
    ports = engine_ports(served["log_dir"])
    assert ports, "no engine was started"
    assert all(not engine_pids(port) for port in ports)
    # the first start, and one more after the kill (a restart, or the next job's start): the job of the other
    # load used a running engine with the same model and args instead of starting its own
    starts = [line for log in served["log_dir"].glob("*.log") for line in log.read_text(errors="replace").splitlines()
              if line.startswith("$ ")]
    assert len(starts) == 2, starts


def test_a_killed_worker_leaves_no_engine(tmp_path, vllm_command, tiny_llama):
    log_dir = tmp_path / "engine-logs"
    worker = run_sweep(smoke_sweep(tmp_path, params={"max_new_tokens": 24, "concurrency": 1}), tmp_path / "w.db",
                       vllm_command=vllm_command, log_dir=log_dir, wait=False)
    try:
        logs = wait_for(lambda: [p for p in log_dir.glob("*.log") if "(EngineCore" in p.read_text(errors="replace")],
                        300)
        assert logs, "the engine core never started"
        pids = engine_pids(engine_ports(log_dir)[0])
        assert pids
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert wait_for(lambda: not any(group_alive(pid) for pid in pids), 30), "the engine outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_model_the_engine_cannot_load_fails_the_job_with_its_message(tmp_path, vllm_command):
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    started = time.monotonic()
    result = run_sweep(smoke_sweep(tmp_path, models=[f"path:{model}"], params={"max_new_tokens": 8, "concurrency": 1}),
                       tmp_path / "b.db",
                       vllm_command=vllm_command, log_dir=tmp_path / "logs")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    jobs = rows(tmp_path / "b.db", "SELECT status, last_error, attempts, load_failures FROM jobs")
    assert {j["status"] for j in jobs} == {"failed"}
    error = jobs[0]["last_error"]
    assert error.startswith("engine failed to start: engine exited before it was ready")
    assert "no-such-architecture" in error, error
    assert elapsed < 120, f"took {elapsed:.0f} s: the failure should be seen as the engine exits"


def test_openai_mode_drives_a_server_started_outside_the_worker(tmp_path, vllm_command, tiny_llama):
    import shlex

    from worker.engines.process import EngineProcess, free_port

    port = free_port()
    server = EngineProcess([*shlex.split(vllm_command), "--model", str(tiny_llama), "--served-model-name", "outside",
                            "--port", str(port), "--enforce-eager"], log_path=tmp_path / "outside.log",
                           env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    server.start()
    try:
        server.wait_healthy(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, 300)
        engine = {"name": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "outside",
                  "metrics_url": f"http://127.0.0.1:{port}/metrics"}
        # an open loop here (the sweep above is closed-loop): Poisson arrivals, 160 requests in about 8 s
        sweep = smoke_sweep(tmp_path, engine=engine, params={"max_new_tokens": MAX_NEW_TOKENS, "request_rate": 20,
                                                              "steady_min_s": 1})
        result = run_sweep(sweep, tmp_path / "o.db", vllm_command=vllm_command, log_dir=tmp_path / "logs")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert server.alive(), "the worker must not stop a server it did not start"
    finally:
        server.stop()
    job = rows(tmp_path / "o.db", "SELECT status, engine, engine_args, engine_log FROM jobs")[0]
    assert (job["status"], job["engine"], job["engine_log"]) == ("done", "openai", None)
    assert json.loads(job["engine_args"])["base_url"] == f"http://127.0.0.1:{port}/v1"
    run = rows(tmp_path / "o.db", "SELECT * FROM v_serving")[0]
    assert run["requests"] == 160 and run["output_tokens"] == 160 * MAX_NEW_TOKENS
    assert (run["request_rate"], run["concurrency"]) == (20, None)
    latencies = rows(tmp_path / "o.db", "SELECT request_latencies FROM serving_runs")[0][0]
    sent = [r["sent_s"] for r in json.loads(latencies)]
    assert 160 / 20 * 0.6 < sent[-1] < 160 / 20 * 1.6  # the arrivals kept their rate (seeded: the same every run)
    assert run["kwh_per_output_token"] > 0 and run["engine_itl_mean_s"] > 0
    check_client_latencies({**run, "flags": run["serving_flags"]})


def test_report_and_export_show_the_served_cells(served, tmp_path):
    import csv
    import subprocess
    import sys

    url = f"sqlite:///{served['database']}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def wattsweep(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "scheduler", *args, "--database-url", url], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    table = wattsweep("report", "serving-smoke")
    assert "Served cells" in table and "1 in flight" in table and "8 in flight" in table
    wattsweep("report", "serving-smoke", "-f", "html", "-o", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert "Energy per output token against concurrency" in html and "Pareto front" in html
    wattsweep("export", "serving-smoke", "--view", "serving", "-o", str(tmp_path / "s.csv"))
    exported = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [int(row["concurrency"]) for row in exported] == [1, 8]
    assert all(float(row["kwh_per_output_token"]) > 0 for row in exported)
    # a run whose client read late exports no ITL, and says why beside it
    assert all((row["itl_p99_s"] == "") == (FLAG in row["serving_flags"]) for row in exported)
