"""Celery mode: a real `wattsweep worker` (Redis, Postgres) runs a served job against the real vLLM (CPU build).

The model is a `hub:` one, in a temporary Hugging Face cache with the Hub offline, so that the commit the engine
served is checked end to end too. Once the job is done and nothing is queued, the worker stops its engine; after the
worker stops, no engine is left.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from db.models import Job
from tests.distributed.conftest import REDIS_URL, Cluster, free_redis_db
from tests.engines.conftest import engine_pids, engine_ports, wait_for
from tests.worker.test_hub_cache import COMMIT, put_in_cache

pytestmark = pytest.mark.engines
QUERIES, MAX_NEW_TOKENS = 40, 8
SWEEP = f"""
name: served-by-celery
defaults: {{queries: {QUERIES}, repetitions: 1, warmup: 2}}
carbon: {{grid_intensity_g_per_kwh: 100}}
tasks:
  text-generation:
    models: [hub:wattsweep-tests/tiny-llama]
    datasets: [builtin:prompts]
    engine: {{name: vllm, args: {{enforce_eager: true, max_num_seqs: 8}}}}
    params: {{max_new_tokens: {MAX_NEW_TOKENS}, concurrency: 4, steady_min_s: 1}}
"""


@pytest.fixture
def cluster(postgres_url, tmp_path, vllm_command):
    put_in_cache(tmp_path / "hf", "wattsweep-tests/tiny-llama", "llama", "text-generation")
    with free_redis_db() as redis_db:
        cluster = Cluster(postgres_url, f"{REDIS_URL}/{redis_db}", tmp_path)
        cluster.env |= {"HF_HOME": str(tmp_path / "hf"), "WATTSWEEP_VLLM_COMMAND": vllm_command,
                        "WATTSWEEP_ENGINE_LOG_DIR": str(tmp_path / "engine-logs")}
        yield cluster
        cluster.close()


def test_a_celery_worker_serves_a_hub_model_and_leaves_no_engine(cluster):
    worker = cluster.start_worker("served")
    sweep_id = cluster.submit(SWEEP)
    cluster.wait_for(cluster.finished, "the served job to finish", timeout_s=420, logs=[worker])
    with cluster.sessions() as session:
        job = session.scalars(select(Job).where(Job.sweep_id == sweep_id)).one()
        runs = session.execute(text("SELECT * FROM v_serving WHERE job_id = :job"), {"job": job.id}).all()
    assert (job.status, job.engine, job.engine_version) == ("done", "vllm", "0.32.0"), job.last_error
    assert job.model_revision == COMMIT  # the commit the engine served, from the cache's refs/main
    command = json.loads(job.engine_args) if isinstance(job.engine_args, str) else job.engine_args
    assert command[command.index("--model") + 1].endswith(f"/snapshots/{COMMIT}")
    assert [(r.requests, r.failed_requests, r.output_tokens) for r in runs] == \
        [(QUERIES, 0, QUERIES * MAX_NEW_TOKENS)]
    # gaps between streamed tokens are measured, or none is stored where the client read them late (flagged)
    assert runs[0].kwh_per_output_token > 0
    assert (runs[0].itl_p99_s is None) == ("client-late" in (runs[0].serving_flags or "").split(","))
    assert runs[0].itl_p99_s is None or runs[0].itl_p99_s > 0
    ports = engine_ports(cluster.folder / "engine-logs")
    assert ports, "no engine was started"
    # the job is done and nothing is queued: the idle worker holds no engine; stopped, it leaves none either
    assert wait_for(lambda: not any(engine_pids(port) for port in ports), 30), "an idle worker kept its engine"
    worker.signal(15)
    assert worker.wait(60) == 0
    assert not any(engine_pids(port) for port in ports), "an engine outlived its worker"
