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

SCRAPE_TIMEOUT_S = 10.0


async def scrape(session, endpoint: Endpoint, only: tuple[str, ...] | None = None) -> dict[str, float]:
    """The engine's Prometheus metrics (`only` those names: worker.engines.metrics.gauges), through the run's
    aiohttp session; {} when it has none or does not answer."""
    if not endpoint.metrics_url:
        return {}
    import aiohttp

    from worker.engines.metrics import gauges, parse

    try:
        async with session.get(endpoint.metrics_url, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as response:
            if response.status != 200:
                return {}
            text = await response.text()
            return parse(text) if only is None else gauges(text, only)
    except Exception:  # a missed scrape is a missing sample, not a failed run
        return {}


async def sample_load(session, endpoint: Endpoint, run: LoadRun, in_flight: Callable[[], int],
                      gpu_energy_mj: Callable[[], int | None] | None, stop: asyncio.Event, period_s: float) -> None:
    from worker.engines.metrics import first, load_of

    names = endpoint.metrics
    only = tuple(name for name in (names.running, names.waiting, *names.kv_cache_usage) if name)
    while True:
        values = await scrape(session, endpoint, only) if only else {}
        running, waiting = load_of(values, endpoint.metrics)
        kv = first(values, endpoint.metrics.kv_cache_usage) if values else None
        run.samples.append(LoadSample(time.time(), in_flight(), running, waiting,
                                      gpu_energy_mj() if gpu_energy_mj else None, kv))
        try:
            await asyncio.wait_for(stop.wait(), timeout=period_s)
            return
        except TimeoutError:
            continue
