"""The one settings object: environment variables prefixed `WATTSWEEP_`.

Lives in `db/` because every process (scheduler, worker, CLI) needs the database
URL, and both scheduler/ and worker/ may depend on db/.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSWEEP_", extra="ignore")

    database_url: str = "sqlite:///wattsweep.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    measure_power_secs: float = 1.0  # CodeCarbon sampling period inside a window
    lease_timeout_s: float = 120.0  # a lease without a heartbeat for this long is stale
    heartbeat_interval_s: float = 15.0
    max_attempts: int = 3
    # Idle baseline: measured when a worker starts and again once older than this.
    baseline_window_s: float = 20.0
    baseline_max_age_s: float = 3600.0
    # Distributed mode.
    visibility_timeout_s: float = 48 * 3600.0  # Redis redelivers an unacked message after this: longer than any job
    dispatch_grace_s: float = 60.0  # reconcile leaves a job alone this long after sending it (message in flight)
    reconcile_interval_s: float = 30.0  # `reconcile --watch` period
    db_retry_s: float = 3600.0  # how long a worker holding a finished run retries an unreachable database
    # Host identity: co-located workers share one kernel. Default: its boot id; set only where that is wrong.
    host_id: str | None = None
    node_name: str | None = None  # display name of this node (workers' hostname, default worker names)
    # Tests only (the simulated GPU node): a --gpu worker runs torch on the CPU while metering its GPU via NVML.
    simulated_gpu: bool = False
    # No query finished for this long: the worker stops beating and exits (3) for its supervisor to restart it.
    # Unset: max(30 min, 4 x the unit's expected duration).
    stall_timeout_s: float | None = None
    max_consecutive_failures: int = 3  # units failed in a row before a worker stops taking work (0: never)

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        # Users paste plain `postgresql://` URLs; we ship psycopg 3, not psycopg2.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()


def mask_url(url: str) -> str:
    """The URL with its password replaced, for error messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
