"""The chaos run's short form (issue 11; bench/chaos.py is the long one): 4 real workers on a private Postgres
and Redis, one fault of each kind (SIGKILL, SIGSTOP/SIGCONT, Redis restart, Postgres restart, a worker's clock
offset) while a sweep of 60 units runs; then every unit is stored exactly once and every job is done or failed
with a reason. The workers run as a node's Postgres role and their class's Redis user, the reconciler as the
scheduler's: the least privilege compose deploys.
"""

from __future__ import annotations

import shutil

import pytest

from tests.chaos.harness import KINDS, ChaosConfig, plan_faults, run_chaos

pytestmark = pytest.mark.chaos


def test_plan_has_every_kind_and_the_seed_picks_it():
    plan = plan_faults(7, 8, workers=4)
    assert len(plan) == 8 and {fault.kind for fault in plan} == set(KINDS)
    assert [fault.at_fraction for fault in plan] == sorted(fault.at_fraction for fault in plan)
    assert plan == plan_faults(7, 8, workers=4) and plan != plan_faults(8, 8, workers=4)


def test_a_short_chaos_run_loses_and_duplicates_no_unit(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server")
    lines: list[str] = []
    config = ChaosConfig(seed=23, folder=tmp_path, models=3, repetitions=5, shards_per_run=4, shard_queries=60,
                         workers=4, faults=len(KINDS), fault_span=(0.05, 0.5), fault_gap_s=1.0,
                         deadline_s=240, log=lines.append)
    result = run_chaos(config)
    report = "\n".join([*lines, result.line()])
    print(report)  # pytest -s shows where the time went
    assert result.finished, report
    assert result.faults == len(KINDS), f"the sweep outran its faults:\n{report}"
    assert (result.units, result.lost, result.duplicated) == (60, 0, 0), report
    assert (result.stuck_jobs, result.failed_without_reason, result.inconsistent) == (0, 0, 0), report
    # Under the reduced roles and Redis users (issue 23): workers as a node role and their class's worker user,
    # the reconciler as wattsweep_app and the scheduler's user. Nothing they did was refused.
    for log in tmp_path.glob("*.log"):
        text = log.read_text(errors="replace")
        for refusal in ("NOPERM", "NoPermissionError", "permission denied", "row-level security"):
            assert refusal not in text, f"{log.name}: {refusal}"
