"""Imports run the way the design says: the import-linter contracts in pyproject.toml hold, and they do fail.

`lint-imports` reads every import, the lazy ones inside functions too, so that
a wrong-way import or a circle is caught when it is written, not when it
first bites at import. It cannot see modules imported by name (importlib), as
the workload registry discovers its modules: the last test checks at run time
that the scheduler's own work (validating and expanding sweeps) loads no GPU
stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scheduler", "worker", "db", "migrations")
CLI_WORKER_EDGES = {  # the commands that run worker-side code in the scheduler's process: worker, run, pull
    "scheduler.cli.distributed -> worker.process.celery_worker",
    "scheduler.cli.distributed -> worker.process.supervisor",
    "scheduler.cli.local -> worker.process.inventory",
    "scheduler.cli.local -> worker.process.local",
    "scheduler.cli.local -> worker.process.runtime",
    "scheduler.cli.study -> worker.data.hf_snapshots",
    "scheduler.cli.study -> worker.models.hub",
}
NO_GPU_STACK = "The scheduler never reaches the GPU stack or CodeCarbon"
CONTRACT_ONLY = "The scheduler imports only the worker's contract package"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` of the venv running these tests, on the packages under `cwd` (no cache left behind)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"COLUMNS": "200"}
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # the scheduler reaching into the worker process: both scheduler contracts (executor imports torch lazily)
    ("scheduler/spec/schema.py", "import worker.process.executor", [NO_GPU_STACK, CONTRACT_ONLY]),
    ("scheduler/plan/expand.py", "from worker.workloads import WORKLOADS", [CONTRACT_ONLY]),
    ("db/models.py", "from db.queue import jobs", ["Database wings import downwards", "No import circles"]),
    ("worker/contract/catalog.py", "import worker.contract.refs", ["No import circles"]),
    ("worker/models/tiny.py", "import worker.workloads", ["Worker wings import downwards", "No import circles"]),
    # migrations import db.settings (through env.py), so db reaching up reaches worker from migrations too
    ("db/settings.py", "import worker.contract.catalog", ["Top level: scheduler > worker > db",
                                                          "Migrations build on db alone"]),
])
def test_an_import_the_wrong_way_breaks_the_contract_that_forbids_it(tmp_path, module, line, broken):
    for name in (*PACKAGES, "pyproject.toml"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    with (tmp_path / module).open("a") as file:
        file.write(f"\n\ndef _wrong_way():\n    {line}  # noqa\n")  # lazy, inside a function: still seen
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{len(contracts()) - len(broken)} kept, {len(broken)} broken" in result.stdout
    for name in broken:
        assert f"{name} BROKEN" in result.stdout


def test_the_scheduler_contracts_name_every_worker_wing_and_allow_only_the_cli_commands_that_run_the_worker():
    wings = {path.stem for path in (ROOT / "worker").iterdir()
             if (path / "__init__.py").is_file() or (path.suffix == ".py" and path.stem != "__init__")}
    assert set(contracts()[CONTRACT_ONLY]["forbidden_modules"]) == {f"worker.{w}" for w in wings - {"contract"}}
    for name in (NO_GPU_STACK, CONTRACT_ONLY):
        assert set(contracts()[name]["ignore_imports"]) == CLI_WORKER_EDGES


def test_validating_and_planning_every_example_and_preset_loads_no_gpu_stack():
    code = ("import json, pathlib, sys\n"
            "from scheduler.plan.workers import make_plan\n"
            "from scheduler.spec.reading import load_sweep\n"
            "files = sorted(pathlib.Path('examples').glob('*.yaml')) + sorted(pathlib.Path('presets').glob('*.yaml'))\n"
            "tasks = set()\n"
            "for path in files:\n"
            "    spec = load_sweep(path)\n"
            "    make_plan(spec)\n"
            "    tasks |= set(spec.tasks)\n"
            "heavy = ('torch', 'transformers', 'diffusers', 'sentence_transformers', 'codecarbon')\n"
            "print(json.dumps([sorted(tasks), [m for m in heavy if m in sys.modules]]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    tasks, heavy = json.loads(result.stdout)
    from worker.contract.tasks import TASKS

    assert (tasks, heavy) == (sorted(TASKS), [])
