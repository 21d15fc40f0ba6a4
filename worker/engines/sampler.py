"""The load sampler: while a run's requests stream, every period (worker.engines.load.SAMPLE_S) the client's
in-flight count, the engine's running and waiting requests (its Prometheus gauges, where it has them), its
KV-cache use and the GPU's energy counter (where the meter has one), from which worker.engines.steady cuts the
steady part of the run. Its scrapes go through the run's own transfers, beside the requests, never blocking them."""

from __future__ import annotations

import time
from collections.abc import Callable

from worker.engines.base import Endpoint
from worker.engines.records import LoadRun, LoadSample
from worker.engines.transfers import Transfers

SCRAPE_TIMEOUT_S = 10.0


def scrape(transfers: Transfers, endpoint: Endpoint, only: tuple[str, ...] | None = None,
           then: Callable[[dict[str, float]], object] | None = None) -> dict[str, float] | None:
    """The engine's Prometheus metrics (`only` those names: worker.engines.metrics.gauges); {} when it has none or
    does not answer. Given `then`, the scrape is started and `then` gets them when it ends (the caller's
    transfers.wait moves it); without, this waits for them."""
    from worker.engines.metrics import gauges, parse

    got: list[dict[str, float]] = []

    def done(error: str | None, body: bytes) -> None:  # a missed scrape is a missing sample, not a failed run
        text = body.decode("utf-8", "replace") if error is None else ""
        values = (parse(text) if only is None else gauges(text, only)) if text else {}
        got.append(values)
        if then is not None:
            then(values)

    if not endpoint.metrics_url:
        done("no metrics", b"")
    else:
        transfers.get(endpoint.metrics_url, SCRAPE_TIMEOUT_S, done)
    if then is not None:
        return None
    while not got:
        transfers.wait(SCRAPE_TIMEOUT_S)
    return got[0]


class Sampler:
    """Takes a sample every `period_s` after the last one ended; `due` says when the next scrape starts."""

    def __init__(self, transfers: Transfers, endpoint: Endpoint, run: LoadRun, in_flight: Callable[[], int],
                 gpu_energy_mj: Callable[[], int | None] | None, period_s: float) -> None:
        names = endpoint.metrics
        self.only = tuple(name for name in (names.running, names.waiting, *names.kv_cache_usage) if name)
        self.transfers, self.endpoint, self.run = transfers, endpoint, run
        self.in_flight, self.gpu_energy_mj, self.period_s = in_flight, gpu_energy_mj, period_s
        self.due: float | None = time.monotonic()  # None while a scrape is out
        self.stopping = False

    def poll(self) -> None:
        """Start the next scrape when it is due (call this whenever the loop wakes)."""
        if self.due is not None and not self.stopping and time.monotonic() >= self.due:
            self.due = None
            if self.only:
                scrape(self.transfers, self.endpoint, self.only, then=self._sample)
            else:
                self._sample({})

    def busy(self) -> bool:
        """A scrape is out: its sample is still to be taken."""
        return self.due is None

    def _sample(self, values: dict[str, float]) -> None:
        from worker.engines.metrics import first, load_of

        running, waiting = load_of(values, self.endpoint.metrics)
        kv = first(values, self.endpoint.metrics.kv_cache_usage) if values else None
        self.run.samples.append(LoadSample(time.time(), self.in_flight(), running, waiting,
                                           self.gpu_energy_mj() if self.gpu_energy_mj else None, kv))
        self.due = time.monotonic() + self.period_s
