# `make demo` and `make test` each build .venv from scratch if it is missing.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch for development and CI; GPU nodes install the package alone and get CUDA torch.
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet "$(TORCH)"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

.PHONY: install demo test lint bench fuzz
install: $(VENV)/.installed

demo: install
	$(VENV)/bin/wattsweep run examples/quickstart.yaml
	$(VENV)/bin/wattsweep status

# Two test processes (pytest-xdist): most tests wait on worker processes, leases and sleeps, not on the CPU. Each
# test has its own Postgres database and Redis database number; the slurm, multihost and chaos groups each run in
# one process (tests/conftest.py). lint-imports checks the import contracts in pyproject.toml.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup --durations=25

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(VENV)/bin/python bench/local_sweep.py
	$(VENV)/bin/python bench/reports.py
	$(VENV)/bin/python bench/plan.py
	$(VENV)/bin/python bench/distributed.py

# Property-based fuzzing of the CLI (tests/fuzz) with many random examples; CI runs a few, derandomized.
FUZZ_EXAMPLES ?= 2000
fuzz: install
	HYPOTHESIS_PROFILE=fuzz WATTSWEEP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/python -m pytest tests/fuzz -q
