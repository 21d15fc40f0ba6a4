"""The one settings object: environment variables prefixed `WATTSWEEP_`.

Lives in `db/` because every process (scheduler, worker, CLI) needs the database
URL, and both scheduler/ and worker/ may depend on db/. A bad value
(`WATTSWEEP_LEASE_TIMEOUT_S=abc`) is a `SettingsError` naming the variable,
the value and what is allowed, which the CLI prints as one line (exit 2).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "WATTSWEEP_"


class SettingsError(ValueError):
    """A WATTSWEEP_ variable with a value that cannot be used; the message is one line."""


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
BROKER_SCHEMES = ("redis", "rediss")


def check_url(url: str, schemes: tuple[str, ...]) -> None:
    """Refuse a URL that would fail later, far from where it was given, or mean something else than it says:
    another scheme, spaces or control characters, a port out of range, a Redis database that is not 0-15.
    Only the standard library: `plan` and `--help` load no database driver."""
    from urllib.parse import urlsplit

    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("a URL has no spaces or control characters")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in schemes:
        raise ValueError(f"use a {' or '.join(s + '://' for s in schemes)} URL")
    if scheme == "sqlite":
        return
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError as error:
        raise ValueError(f"not a URL ({error})") from None
    if port == 0:
        raise ValueError("port 0 is no port")
    if not parts.hostname and "host=" not in parts.query:  # libpq's `?host=/run/postgresql`: a socket folder
        raise ValueError("the URL names no host")
    if scheme in BROKER_SCHEMES and parts.path.strip("/") and not (parts.path.strip("/").isdigit()
                                                                  and int(parts.path.strip("/")) <= 15):
        raise ValueError("the Redis database is a number from 0 to 15 (redis://host:6379/0)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = "sqlite:///wattsweep.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Kept so that deployments that set it still start (0 included); it no longer changes anything: in task mode
    # CodeCarbon reads each window at its ends, and the meter flags the real limits (worker.measure.meter.window_flags).
    measure_power_secs: float = Field(1.0, ge=0, allow_inf_nan=False)
    lease_timeout_s: float = Field(120.0, gt=0, allow_inf_nan=False)  # a lease without a heartbeat this long is stale
    heartbeat_interval_s: float = Field(15.0, gt=0, allow_inf_nan=False)
    max_attempts: int = Field(3, ge=1, le=1000)
    # Idle baseline: measured when a worker starts and again once older than this.
    baseline_window_s: float = Field(20.0, ge=0, allow_inf_nan=False)
    baseline_max_age_s: float = Field(3600.0, gt=0, allow_inf_nan=False)
    # A GPU baseline starts once the device has settled: power within this share over this long, or the timeout.
    baseline_settle_tolerance: float = Field(0.02, gt=0, le=1, allow_inf_nan=False)
    baseline_settle_window_s: float = Field(5.0, ge=0, allow_inf_nan=False)
    baseline_settle_timeout_s: float = Field(120.0, ge=0, allow_inf_nan=False)
    baseline_settle_interval_s: float = Field(0.25, gt=0, allow_inf_nan=False)  # between power readings
    # Measured again when the device's temperature at a run's start is this far from the baseline's.
    baseline_drift_c: float = Field(10.0, gt=0, allow_inf_nan=False)
    # How long a baseline waits for co-located workers' windows to end before it is taken anyway, flagged.
    baseline_neighbour_wait_s: float = Field(60.0, ge=0, allow_inf_nan=False)
    # Distributed mode.
    # Redis redelivers an unacked message after this: longer than any job.
    visibility_timeout_s: float = Field(48 * 3600.0, gt=0, allow_inf_nan=False)
    dispatch_grace_s: float = Field(60.0, ge=0, allow_inf_nan=False)  # reconcile leaves a just-sent job alone
    reconcile_interval_s: float = Field(30.0, gt=0, allow_inf_nan=False)  # `reconcile --watch` period
    db_retry_s: float = Field(3600.0, ge=0, allow_inf_nan=False)  # how long a worker holding a run retries the db
    # Postgres connections (db/session.py): each worker holds at most `pool_size` (main + heartbeat).
    pool_size: int = Field(2, ge=1, le=100)
    connect_timeout_s: int = Field(10, ge=1, le=3600)
    statement_timeout_s: float = Field(300.0, ge=0, allow_inf_nan=False)  # 0: no limit
    lock_timeout_s: float = Field(30.0, ge=0, allow_inf_nan=False)
    idle_in_transaction_timeout_s: float = Field(60.0, ge=0, allow_inf_nan=False)
    # Reader and node sessions idle in a transaction, or in one statement, longer than these are ended by the
    # scheduler's reconcile pass (db/stale_sessions.py): a role can turn its own timeouts off. 0: no statement limit.
    session_idle_limit_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    session_statement_limit_s: float = Field(900.0, ge=0, allow_inf_nan=False)
    # Migrations wait this long for a lock, then roll back and try again (db/migrate.py): a migration queued
    # behind a reader's lock would make every worker's statement on that table queue behind it.
    migration_lock_timeout_s: float = Field(5.0, gt=0, allow_inf_nan=False)
    migration_attempts: int = Field(30, ge=1, le=1000)
    pgbouncer: bool = False  # connections go through PgBouncer in transaction mode (see db/session.py)
    # Files are read only under these folders (os.pathsep-separated; empty: the working directory and HF_HOME).
    data_roots: str = ""
    allow_urls: bool = False  # datasets may fetch image URLs (red_caps) only when this is on
    # Host identity: co-located workers share one kernel. Default: its boot id; set only where that is wrong.
    host_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,100}$")
    # Display name of this node (workers' hostname, default worker names NAME@NODE): no '@', spaces or controls.
    node_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    # Tests only (the simulated GPU node): a --gpu worker runs torch on the CPU while metering its GPU via NVML.
    simulated_gpu: bool = False
    # No query finished for this long: the worker stops beating and exits (3) for its supervisor to restart it.
    # Unset: max(30 min, 4 x the unit's expected duration).
    stall_timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    # Failed units in a row before a worker stops taking work (0: never).
    max_consecutive_failures: int = Field(3, ge=0, le=1_000_000)
    # Engines (worker/engines): the command that starts vLLM (its own venv or container: engines pin their own torch),
    # and where engine logs are kept (empty: <temp folder>/wattsweep-engines).
    vllm_command: str = "python -m vllm.entrypoints.openai.api_server"
    engine_log_dir: str = ""

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        check_url(url, DATABASE_SCHEMES)
        # Users paste plain `postgresql://` URLs; we ship psycopg 3, not psycopg2.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @field_validator("broker_url")
    @classmethod
    def _redis_only(cls, url: str) -> str:
        check_url(url, BROKER_SCHEMES)
        return url

    def data_root_paths(self) -> list[Path]:
        """The folders files may be read from, resolved (symlinks followed)."""
        listed = [part for part in self.data_roots.split(os.pathsep) if part.strip()]
        if not listed:
            listed = [os.getcwd(), hf_home()]
        return [Path(part).expanduser().resolve() for part in listed]


def hf_home() -> str:
    """HF_HOME as huggingface_hub computes it (without importing it: the scheduler stays light)."""
    if os.environ.get("HF_HOME"):
        return os.environ["HF_HOME"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "huggingface")


def make_settings(**values) -> Settings:
    """Settings from the environment (plus `values`), or SettingsError naming the variable and the limit.

    WATTSWEEP_SECRETS_DIR: a folder of files named after the variables (`wattsweep_database_url`, ...), read
    where the environment has no such variable: compose's secrets (/run/secrets), so that passwords are in no
    process's environment."""
    secrets_dir = os.environ.get(ENV_PREFIX + "SECRETS_DIR")
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR={secrets_dir!r}: not a folder")
    if secrets_dir:
        values = {"_secrets_dir": secrets_dir} | values
    try:
        return Settings(**values)
    except ValidationError as error:
        problem = error.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        value = problem.get("input")
        shown = repr(mask_url(value) if field in ("database_url", "broker_url") and isinstance(value, str) else value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        message = problem["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}={shown}: {message}") from None


@lru_cache
def get_settings() -> Settings:
    return make_settings()


def mask_url(url: str) -> str:
    """The URL with its password replaced, for error messages and logs."""
    if "@" not in url:  # no user part, nothing to hide (SQLite files: `plan` need not import SQLAlchemy)
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
