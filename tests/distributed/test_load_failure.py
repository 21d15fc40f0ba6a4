"""Test 6: a job whose model fails to load ends `failed` after max_attempts with its error; the sweep finishes
the rest; `retry --failed` gives it fresh attempts."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Job
from tests.distributed.conftest import sweep_yaml


def test_model_that_fails_to_load_fails_after_max_attempts(cluster, tiny_bert_dir):
    missing = cluster.folder / "no-such-model"
    worker = cluster.start_worker("solo")
    sweep_id = cluster.submit(sweep_yaml("broken", [f"path:{missing}", f"path:{tiny_bert_dir}", "tiny:bert"]))
    cluster.wait_for(cluster.finished, "the sweep to finish", logs=[worker])

    def jobs() -> dict[str, Job]:
        with cluster.sessions() as session:
            return {j.model: j for j in session.scalars(select(Job).where(Job.sweep_id == sweep_id))}

    broken = jobs()[f"path:{missing}"]
    assert (broken.status, broken.attempts, broken.max_attempts) == ("failed", 2, 2)  # WATTSWEEP_MAX_ATTEMPTS=2
    assert "model failed to load" in broken.last_error and "does not exist" in broken.last_error
    assert {j.status for m, j in jobs().items() if m != broken.model} == {"done"}
    status = cluster.wattsweep("status", str(sweep_id))
    assert "jobs: 2 done, 0 running, 1 failed, 0 queued, 3 total" in status.stdout
    assert "failed: fill-mask / path:" in status.stdout

    retried = cluster.wattsweep("retry", str(sweep_id), "--failed")
    assert "1 failed job(s) sent again" in retried.stdout, retried.stderr
    cluster.wait_for(lambda: jobs()[broken.model].status == "failed" and cluster.finished(),
                     "the retried job to fail again", logs=[worker])
    assert jobs()[broken.model].attempts == 2  # fresh attempts, used up again
    cluster.assert_every_run_stored_once(sweep_id)
