"""docs/sql.md: every ready query runs on SQLite and Postgres and answers something; every view column is documented."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text, update

from db.models import Job
from db.results.views import VIEW_COLUMNS
from tests.results_data import SeedModel, seed_sweep

DOC = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text()
QUERIES = re.findall(r"```sql\n(.*?)```", DOC, flags=re.S)


def test_every_view_column_is_documented():
    for view, columns in VIEW_COLUMNS.items():
        section = DOC.split(f"### {view}", 1)[1].split("\n### ", 1)[0]
        documented = {name.strip() for row in re.findall(r"^\| ([^|]+) \|", section, flags=re.M)
                      for name in row.split(",")}
        missing = [c for c in columns if c not in documented]
        if view == "v_hardware_summary":  # documents the shared statistics by reference to v_task_summary
            missing = [c for c in missing if c not in VIEW_COLUMNS["v_task_summary"]]
        assert not missing, f"{view}: {missing}"


def test_ready_queries_run(sessions):
    assert len(QUERIES) >= 8
    models = [
        SeedModel("text-classification", "hub:distilbert", [0.002, 0.003], num_parameters=66_000_000),
        SeedModel("text-classification", "hub:bigscience/bloomz-560m", [0.02, 0.03], kind="multi-purpose",
                  num_parameters=559_000_000),
        SeedModel("summarization", "hub:t5-small", [0.01], num_parameters=60_000_000),
    ]
    with sessions.begin() as session:
        seed_sweep(session, name="my-sweep", hardware_class="a100", models=models)
        seed_sweep(session, name="on-h100", hardware_class="h100", worker_id="gpu0@node9", models=models[:2])
        session.execute(text("UPDATE jobs SET status = 'running' WHERE model = 'hub:t5-small'"))
        # One model sampled, as a sweep with `temperature` stores it (the decoding query looks for it).
        session.execute(update(Job).where(Job.model == "hub:bigscience/bloomz-560m").values(
            decoding={"do_sample": True, "num_beams": 1, "temperature": 0.7, "top_p": 0.9, "top_k": 50, "seed": 1}))
        session.execute(text("UPDATE measurements SET is_outlier = :t, flags = 'short-window' "
                             "WHERE kwh_per_1k_queries > 0.025"), {"t": True})
    with sessions() as session:
        for query in QUERIES:
            rows = session.execute(text(query)).all()
            assert rows, f"no rows from:\n{query}"
