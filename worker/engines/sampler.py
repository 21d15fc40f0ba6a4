"""The load sampler: while a run's requests stream, every period (worker.engines.load.SAMPLE_S) the client's
in-flight count, the engine's running and waiting requests (its Prometheus gauges, where it has them), its
KV-cache use and the GPU's energy counter (where the meter has one), from which worker.engines.steady cuts the
steady part of the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from worker.engines.base import Endpoint
from worker.engines.records import LoadRun, LoadSample


async def scrape(scraper, endpoint: Endpoint) -> dict[str, float]:
    if not endpoint.metrics_url:
        return {}
    from worker.engines.metrics import parse

    try:
        response = await scraper.get(endpoint.metrics_url)
        return parse(response.text) if response.status_code == 200 else {}
    except Exception:  # a missed scrape is a missing sample, not a failed run
        return {}


async def sample_load(scraper, endpoint: Endpoint, run: LoadRun, in_flight: Callable[[], int],
                      gpu_energy_mj: Callable[[], int | None] | None, stop: asyncio.Event, period_s: float) -> None:
    from worker.engines.metrics import first, load_of

    while True:
        values = await scrape(scraper, endpoint)
        running, waiting = load_of(values, endpoint.metrics)
        kv = first(values, endpoint.metrics.kv_cache_usage) if values else None
        run.samples.append(LoadSample(time.time(), in_flight(), running, waiting,
                                      gpu_energy_mj() if gpu_energy_mj else None, kv))
        try:
            await asyncio.wait_for(stop.wait(), timeout=period_s)
            return
        except TimeoutError:
            continue
