"""bench/replay.py --group-share: a trace whose jobs partly need a group of GPUs, replayed by the workers' own
decision code (worker.process.loop over a real SQLite database) with workers of each size (issue 21)."""

from __future__ import annotations

from bench.replay import main, simulate
from bench.replay_trace import TraceRun, mark_groups

TRACE = [TraceRun("text-generation", f"hub:sim/m{j}", "builtin:prompts", r, 300.0 + 40 * j)
         for j in range(8) for r in range(3)]


def test_mark_groups_takes_jobs_until_their_gpu_seconds_are_the_share():
    marked = mark_groups(TRACE, share=0.3, size=4, seed=0)
    seconds = {run.model: 0.0 for run in TRACE}
    for run in TRACE:
        seconds[run.model] += run.duration_s
    group_s = sum(4 * seconds[model] for _, model in marked)
    assert set(marked.values()) == {4} and 0.25 < group_s / (group_s + sum(seconds.values()) - group_s / 4) < 0.32


def test_group_jobs_run_only_on_group_workers_and_dissolved_groups_take_one_gpu_work(tmp_path, capsys):
    groups = mark_groups(TRACE, share=0.3, size=2, seed=0)
    static = simulate(TRACE, 6, None, queries=100, max_unit_s=1800.0, groups=groups)  # raises if a unit is left
    assert static["pools"] == {1: 4, 2: 1} and static["dissolved_at_s"] == []
    assert static["placed"] == {(1, 1), (2, 2)}  # (a job's GPUs, its worker's): never a mismatch
    assert static["makespan_s"] >= static["lower_bound_s"] == sum(static["gpu_s"].values()) / 6
    dissolving = simulate(TRACE, 6, None, queries=100, max_unit_s=1800.0, groups=groups, dissolve=True)
    assert len(dissolving["dissolved_at_s"]) == 1 and dissolving["makespan_s"] <= static["makespan_s"]
    assert dissolving["placed"] == {(1, 1), (2, 2)}
    trace = tmp_path / "trace.tsv"
    trace.write_text("task\tmodel\tdataset\trepetition\tduration_s\n" + "".join(
        f"{r.task}\t{r.model}\t{r.dataset}\t{r.repetition}\t{r.duration_s}\n" for r in TRACE))
    main([str(trace), "--simulate", "6", "--group-share", "0.3", "--group-size", "2", "--dissolve",
          "--queries", "100"])
    out = capsys.readouterr().out
    assert f"ratio={dissolving['makespan_s'] / dissolving['lower_bound_s']:.4f}" in out
    assert "workers: 4 of 1 GPU + 1 of 2 GPUs on 6 GPUs; lower_bound_s is GPU-seconds / GPUs" in out
    assert "groups dissolved into one-GPU workers: 1, at " in out
