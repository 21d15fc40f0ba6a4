# One image for every wattsweep service: migrate, scheduler (reconcile --watch) and the GPU workers.
# GPU nodes need the NVIDIA Container Toolkit; the driver comes from the host, CUDA libraries from pip's torch wheel.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HOME=/data/hf

# Celery refuses nothing as root but warns; workers have no reason to run as root.
RUN useradd --create-home --uid 1000 wattsweep && mkdir -p /data/hf && chown wattsweep /data/hf

WORKDIR /app
COPY pyproject.toml README.md ./
COPY db db
COPY migrations migrations
COPY scheduler scheduler
COPY worker worker
# pip's default torch is the CUDA build: right for GPU nodes (the Makefile installs the CPU build for dev and CI).
RUN pip install .
COPY examples examples
COPY presets presets

# No `USER wattsweep`: the entrypoint starts as root only to make the host's RAPL counters readable by the
# wattsweep group (root-only since Linux 5.10), then runs every command as wattsweep (setpriv, util-linux).
# Where the host does not allow it, CPU energy is CodeCarbon's estimate and each window says so (README).
COPY deploy/worker-entrypoint.sh /usr/local/bin/wattsweep-entrypoint
ENTRYPOINT ["wattsweep-entrypoint", "wattsweep"]
CMD ["--help"]
