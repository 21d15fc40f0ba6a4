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

USER wattsweep
ENTRYPOINT ["wattsweep"]
CMD ["--help"]
