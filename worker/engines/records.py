"""What one served run records: each request's timings and usage, the load samples, and the run's spans."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    sent_at: float  # epoch seconds
    chunk_at: list[float] = field(default_factory=list)  # each streamed chunk of new tokens (not the usage one)
    done_at: float | None = None
    prompt_tokens: int | None = None  # the engine's usage
    completion_tokens: int | None = None
    error: str | None = None

    @property
    def ttft_s(self) -> float | None:
        return self.chunk_at[0] - self.sent_at if self.chunk_at else None

    @property
    def e2e_s(self) -> float | None:
        return self.done_at - self.sent_at if self.done_at is not None and self.error is None else None

    def gaps_s(self) -> list[float]:
        return [b - a for a, b in zip(self.chunk_at, self.chunk_at[1:], strict=False)]


@dataclass(frozen=True)
class LoadSample:
    at: float  # epoch seconds
    in_flight: int  # the client's
    running: float | None = None  # the engine's, where it says
    waiting: float | None = None
    gpu_energy_mj: int | None = None  # the metered GPU's energy counter
    kv_cache_usage: float | None = None


@dataclass
class LoadRun:
    """What one run's load did: its requests, the load samples, and when it held its target load (client side)."""

    records: list[RequestRecord]
    samples: list[LoadSample]
    started_at: float
    ended_at: float
    full_at: float | None = None  # closed loop: the target count is in flight; open loop: arrivals begin
    drain_at: float | None = None  # closed loop: the first request that found no prompt left; open: last arrival
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.records if r.error]
