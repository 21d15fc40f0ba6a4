"""SQLAlchemy models: sweeps -> jobs -> runs -> shards (the units workers claim) -> measurements, plus workers.

The database is the source of truth. Unique keys make a duplicate job, run or
shard impossible; statuses are plain strings so that SQL reads them directly.
Lease times are written with the database server's clock (db.clock), never a
worker's.
"""

# No `from __future__ import annotations`: SQLAlchemy would then evaluate each of the 270 `Mapped[...]` strings
# itself, a sixth of this module's 40 ms import (every report and status pays it); the two forward references are
# quoted instead.
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false, true


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Named constraints, so that later migrations can alter them on SQLite too.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    spec: Mapped[dict[str, Any]]  # the validated sweep file, as submitted
    hardware_class: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(20))  # local | distributed | imported
    country_iso_code: Mapped[str | None] = mapped_column(String(3))
    region: Mapped[str | None] = mapped_column(String(100))
    grid_intensity_g_per_kwh: Mapped[float | None] = mapped_column(Float)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # one job per host
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    jobs: Mapped[list["Job"]] = relationship(back_populates="sweep", order_by="Job.id")


class Job(Base):
    """One (task, model, hardware class, axis values) cell; each worker that works on it loads the model once."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("sweep_id", "task", "model", "hardware_class", "cell_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(300))
    hardware_class: Mapped[str] = mapped_column(String(100), index=True)
    params: Mapped[dict[str, Any]]
    # queued (nobody on it) | running (a worker joined) | done | failed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # model loads by workers (hand-backs not counted)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)  # per unit; and load failures per job
    last_error: Mapped[str | None] = mapped_column(Text)
    # The worker that joined it last, while it is running. Leases are per unit (Shard.lease_*); this is a pointer
    # for people and tests, never consulted to decide who may write.
    lease_worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_heartbeat_at: Mapped[datetime | None]  # unused since per-unit leases (migration 0012); kept for old rows
    dispatched_at: Mapped[datetime | None]  # last time its id was sent to the broker (distributed mode)
    num_parameters: Mapped[int | None] = mapped_column(BigInteger)  # of the loaded model, where known
    # task-specific | multi-purpose (a generative model prompted zero-shot); see migration 0006.
    model_kind: Mapped[str] = mapped_column(String(20), default="task-specific", server_default="task-specific")
    model_revision: Mapped[str | None] = mapped_column(String(64))  # Hub commit loaded; None for tiny:/path:
    model_dtype: Mapped[str | None] = mapped_column(String(20))  # dtype of the loaded weights
    # The quantization the model was loaded with (migration 0026), as its checkpoint's quantization_config says and
    # transformers applied it: method (fp8, gptq, bitsandbytes, torchao, ...) and the weights' bits; NULL: none.
    quantization_method: Mapped[str | None] = mapped_column(String(40))
    quantization_bits: Mapped[int | None] = mapped_column(Integer)
    # torch's float32 numerics when the model was loaded (migration 0024): torch.get_float32_matmul_precision()
    # (highest | high | medium), and whether float32 matmuls and cuDNN convolutions may use TF32 on Ampere or
    # newer GPUs. The same FP32 model measures differently with TF32 on.
    float32_matmul_precision: Mapped[str | None] = mapped_column(String(20))
    tf32_matmul: Mapped[bool | None] = mapped_column(Boolean)
    tf32_cudnn: Mapped[bool | None] = mapped_column(Boolean)
    # The cell's sweep-axis values (migration 0011; worker.contract.catalog.SWEEP_AXES): one column each, for every axis
    # that applies to the task, so that SQL can group by them; cell_key names the values given as lists.
    cell_key: Mapped[str] = mapped_column(String(300), default="", server_default="")
    batch_size: Mapped[int | None] = mapped_column(Integer)
    dtype: Mapped[str | None] = mapped_column(String(20))  # asked for (None: as saved); model_dtype: as loaded
    max_new_tokens: Mapped[int | None] = mapped_column(Integer)
    num_inference_steps: Mapped[int | None] = mapped_column(Integer)
    height_px: Mapped[int | None] = mapped_column(Integer)
    width_px: Mapped[int | None] = mapped_column(Integer)
    reasoning: Mapped[str | None] = mapped_column(String(10))  # on | off | low | medium | high
    temperature: Mapped[float | None] = mapped_column(Float)  # asked for: None or 0 = greedy (migration 0025)
    chat_template: Mapped[bool | None] = mapped_column(Boolean)  # text generation: prompts through the template
    power_limit_w: Mapped[float | None] = mapped_column(Float)  # the GPUs' limit asked for (None: as found; 0027)
    # What generation used, as the worker resolved it (do_sample, temperature, top_p, top_k, num_beams, seed,
    # chat template applied, reasoning switch): written after the load window, beside model_dtype.
    decoding: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    load_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # counted to max_attempts
    # Served jobs (migration 0020, worker/engines): the engine, its version and full command line (or endpoint),
    # its kept log, and the load axes of the cell (closed loop: concurrency; open loop: request_rate per s).
    engine: Mapped[str | None] = mapped_column(String(20))
    engine_version: Mapped[str | None] = mapped_column(String(50))
    engine_args: Mapped[Any | None] = mapped_column(JSON)
    engine_log: Mapped[str | None] = mapped_column(Text)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    request_rate: Mapped[float | None] = mapped_column(Float)
    # Duration estimates written at submit (db.results.estimates): the job's expected work and model load, and where the
    # figures came from: "measured" (earlier windows of this task, model, hardware class) or "prior".
    expected_s: Mapped[float | None] = mapped_column(Float)
    load_expected_s: Mapped[float | None] = mapped_column(Float)
    estimate_source: Mapped[str | None] = mapped_column(String(20))
    # Whether a claim may split its long units as the queue drains (db.queue.splitting); false where the sweep
    # fixed the unit size (shard_queries). Migration 0020.
    split_units: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # GPUs the job needs (the sweep's model_gpus, `auto` resolved at submit): it goes to the queue of workers
    # holding exactly that many (worker.contract.celery_app.job_queue). Migration 0030.
    gpus: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    sweep: Mapped[Sweep] = relationship(back_populates="jobs")
    runs: Mapped[list["Run"]] = relationship(back_populates="job", order_by="Run.id")


class Run(Base):
    """One (dataset, repetition) measured inside a job."""

    __tablename__ = "runs"
    # (job_id, id): lookups by job, and the key a unit's foreign key names (migration 0033). No index on status:
    # every query of runs goes by job or id first, and each index is written a million times by a big submit.
    __table_args__ = (UniqueConstraint("job_id", "dataset", "repetition"),
                      Index("uq_runs_job_id_id", "job_id", "id", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    dataset: Mapped[str] = mapped_column(String(300))
    repetition: Mapped[int] = mapped_column(Integer)
    n_queries: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    warmup: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|done|failed
    worker_id: Mapped[str | None] = mapped_column(String(200))  # who stored it (its last shard)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    n_shards: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # > 1: measured as shards

    job: Mapped[Job] = relationship(back_populates="runs")


class Shard(Base):
    """A unit of work: a whole run (n_shards = 1), or `n_queries` consecutive queries of a long run.

    Workers claim units one at a time, each under its own lease (worker id +
    per-process token + heartbeat, stamped by the database server's clock).
    A shard's window is stored with its own provenance; when a run's last
    shard is stored, the run's `query` window is written as their sum.
    """

    __tablename__ = "shards"
    # Postgres checks one foreign key, to its run and that run's job together (migration 0033; SQLite keeps one to
    # each): one check per unit written, not two. job_id's own key below holds through it (a run's job exists) and
    # gives the ORM its join path to jobs; deleting a job deletes its units through its runs.
    __table_args__ = (UniqueConstraint("run_id", "shard_index"), Index(None, "job_id", "status"),
                      ForeignKeyConstraint(["job_id", "run_id"], ["runs.job_id", "runs.id"], ondelete="CASCADE"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(Integer)
    # 0-based, in query order as submit made them; the rest of a unit split at claim time takes the run's next
    # free index (db.queue.splitting), so query_start, not the index, gives the order.
    shard_index: Mapped[int] = mapped_column(Integer)
    query_start: Mapped[int] = mapped_column(Integer)  # offset of its first measured query in the run
    n_queries: Mapped[int] = mapped_column(Integer)
    expected_s: Mapped[float | None] = mapped_column(Float)  # estimate at submit: longest units go first
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims, takeovers included
    lease_worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))  # the holding process's token
    lease_heartbeat_at: Mapped[datetime | None]  # database server clock
    progress_at: Mapped[datetime | None]  # last completed query (server clock); old while beating = stalled
    stalled_at: Mapped[datetime | None]  # set by a worker's watchdog as it gives the unit up
    worker_id: Mapped[str | None] = mapped_column(String(200))  # who stored it
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class Unavailable(Base):
    """A worker process found a job's model or dataset missing on its node: it stops taking that job.

    Keyed by the process token, so a restarted worker (after `wattsweep pull`) tries again.
    """

    __tablename__ = "unavailable"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Measurement(Base):
    """One meter window: phase `load` (per job attempt) or `query` (per run).

    Raw CodeCarbon fields plus work units, derived figures and how each
    component was measured, so that no estimate passes for a measurement.
    """

    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("run_id", "phase"), Index(None, "hostname", "ended_at"),
                      Index(None, "host_id", "ended_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # Set on a run's `query` / `prefill` rows; NULL on `load` and on shard windows (`shard`, `shard-pre`).
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(10))  # load | query | prefill | shard | shard-pre
    shard_id: Mapped[int | None] = mapped_column(Integer, index=True)  # the unit this window measured (shards.id)
    # Set on a sharded run's `query` / `prefill` row: it is the sum of this many shard windows, not a window
    # itself (no hostname: attribution must never count it beside its shards).
    shards: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime]

    duration_s: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float)
    cpu_energy_kwh: Mapped[float] = mapped_column(Float)
    gpu_energy_kwh: Mapped[float] = mapped_column(Float)
    ram_energy_kwh: Mapped[float] = mapped_column(Float)
    emissions_kg: Mapped[float] = mapped_column(Float)
    cpu_power_w: Mapped[float | None] = mapped_column(Float)
    gpu_power_w: Mapped[float | None] = mapped_column(Float)
    ram_power_w: Mapped[float | None] = mapped_column(Float)
    cpu_utilization_pct: Mapped[float | None] = mapped_column(Float)
    gpu_utilization_pct: Mapped[float | None] = mapped_column(Float)
    ram_utilization_pct: Mapped[float | None] = mapped_column(Float)

    cpu_model: Mapped[str | None] = mapped_column(String(200))
    cpu_count: Mapped[int | None] = mapped_column(Integer)
    gpu_model: Mapped[str | None] = mapped_column(String(200))
    gpu_count: Mapped[int | None] = mapped_column(Integer)
    ram_total_gb: Mapped[float | None] = mapped_column(Float)
    cpu_method: Mapped[str] = mapped_column(String(30))  # rapl | cpu-load-estimate | constant
    gpu_method: Mapped[str] = mapped_column(String(30))  # nvml-energy-counter | power-sampling | none
    ram_method: Mapped[str] = mapped_column(String(30))  # always an estimate: which model
    tracking_mode: Mapped[str] = mapped_column(String(10))
    codecarbon_version: Mapped[str] = mapped_column(String(20))
    country_iso_code: Mapped[str | None] = mapped_column(String(3))
    region: Mapped[str | None] = mapped_column(String(100))
    carbon_intensity_g_per_kwh: Mapped[float | None] = mapped_column(Float)
    carbon_intensity_source: Mapped[str] = mapped_column(String(20))  # country mix | region | explicit

    n_queries: Mapped[int | None] = mapped_column(Integer)  # None for the load phase
    batch_size: Mapped[int | None] = mapped_column(Integer)
    input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    images: Mapped[int | None] = mapped_column(Integer)
    audio_s: Mapped[float | None] = mapped_column(Float)  # seconds of audio transcribed
    kwh_per_1k_queries: Mapped[float | None] = mapped_column(Float)
    # Latency (migration 0011): each query's time is its batch's, measured around the batch inside the window.
    latency_p50_s: Mapped[float | None] = mapped_column(Float)
    latency_p95_s: Mapped[float | None] = mapped_column(Float)
    throughput_queries_per_s: Mapped[float | None] = mapped_column(Float)  # queries / window duration
    ttft_p50_s: Mapped[float | None] = mapped_column(Float)  # generation: first token after the batch starts
    output_tokens_p50: Mapped[float | None] = mapped_column(Float)  # per query, where lengths vary (reasoning)
    output_tokens_p95: Mapped[float | None] = mapped_column(Float)

    # Measurement quality (see worker/measure/baseline.py and db/results/attribution.py).
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("idle_baselines.id"))
    idle_energy_kwh: Mapped[float | None] = mapped_column(Float)  # idle power x duration; net = energy - idle
    # Each component's idle power x duration (node-wide; idle_energy_kwh is their sum). Migration 0019.
    idle_cpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    idle_gpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    idle_ram_energy_kwh: Mapped[float | None] = mapped_column(Float)
    hostname: Mapped[str | None] = mapped_column(String(200))  # the node's display name
    host_id: Mapped[str | None] = mapped_column(String(100))  # one kernel: co-located windows share CPU and RAM
    ended_at: Mapped[datetime | None]
    cpu_energy_attributed_kwh: Mapped[float | None] = mapped_column(Float)  # share of machine-wide CPU energy
    ram_energy_attributed_kwh: Mapped[float | None] = mapped_column(Float)
    max_concurrent_windows: Mapped[int | None] = mapped_column(Integer)  # windows overlapping on this host
    # The host's CPU and RAM energy over the window as a time series (migration 0017, worker/measure/host_energy.py):
    # {"t_s": [end of each sample interval, s after started_at], "cpu_j": [J in it], "ram_j": [J in it]}.
    host_samples: Mapped[dict[str, Any] | None]
    power_samples: Mapped[int | None] = mapped_column(Integer)
    is_outlier: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # > 3 MAD: kept
    is_unreliable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    flags: Mapped[str | None] = mapped_column(String(300))  # why unreliable, e.g. "short-window"
    # Provenance of the window (migration 0015): the metered GPU, its state at the window's ends, what
    # CodeCarbon assumed (TDP of a CPU estimate, PUE) and what it warned about (verbatim; flags name them).
    gpu_uuid: Mapped[str | None] = mapped_column(String(100))
    # Each metered GPU's own energy: [{"index", "uuid", "kwh"}] (0028); gpu_energy_kwh is their sum.
    gpu_energies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    cpu_tdp_w: Mapped[float | None] = mapped_column(Float)
    pue: Mapped[float | None] = mapped_column(Float)
    codecarbon_warnings: Mapped[str | None] = mapped_column(Text)
    gpu_temperature_start_c: Mapped[float | None] = mapped_column(Float)
    gpu_sm_clock_start_mhz: Mapped[float | None] = mapped_column(Float)
    gpu_power_limit_start_w: Mapped[float | None] = mapped_column(Float)
    gpu_throttle_start: Mapped[int | None] = mapped_column(Integer)  # NVML clocks-event reason bits
    gpu_temperature_end_c: Mapped[float | None] = mapped_column(Float)
    gpu_sm_clock_end_mhz: Mapped[float | None] = mapped_column(Float)
    gpu_power_limit_end_w: Mapped[float | None] = mapped_column(Float)
    gpu_throttle_end: Mapped[int | None] = mapped_column(Integer)
    # The job's power_limit_w axis (migration 0027): the limit set on the worker's GPUs through NVML for this window,
    # and what NVML answered when read back right after setting (the lowest of a group's GPUs). NULL: none set.
    power_limit_set_w: Mapped[float | None] = mapped_column(Float)
    power_limit_read_w: Mapped[float | None] = mapped_column(Float)


class IdleBaseline(Base):
    """A worker's idle power per component, subtracted to give net (above-idle) energy."""

    __tablename__ = "idle_baselines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(200))
    host_id: Mapped[str | None] = mapped_column(String(100))
    measured_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    cpu_power_w: Mapped[float] = mapped_column(Float)
    gpu_power_w: Mapped[float] = mapped_column(Float)
    ram_power_w: Mapped[float] = mapped_column(Float)
    cpu_method: Mapped[str] = mapped_column(String(30))
    gpu_method: Mapped[str] = mapped_column(String(30))
    ram_method: Mapped[str] = mapped_column(String(30))
    # Migration 0019: idle energy per component over the baseline window, the GPU's state when it began, and
    # how it was taken (worker/measure/baseline.py).
    cpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    gpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    ram_energy_kwh: Mapped[float | None] = mapped_column(Float)
    gpu_temperature_c: Mapped[float | None] = mapped_column(Float)
    gpu_sm_clock_mhz: Mapped[float | None] = mapped_column(Float)
    gpu_power_limit_w: Mapped[float | None] = mapped_column(Float)
    gpu_throttle_reasons: Mapped[int | None] = mapped_column(Integer)  # NVML bit mask (worker.measure.device_state)
    settled: Mapped[bool | None] = mapped_column(Boolean)  # GPU power stable first; False: timed out; NULL: no GPU
    settle_s: Mapped[float | None] = mapped_column(Float)  # seconds waited for it
    reason: Mapped[str | None] = mapped_column(String(30))  # first | age | temperature-drift | per-run
    flags: Mapped[str | None] = mapped_column(String(300))  # gpu-not-settled, neighbours-busy


class Worker(Base):
    """A worker process and the hardware and software it measures on."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # e.g. gpu0@node7, local@laptop
    hostname: Mapped[str] = mapped_column(String(200))  # display name (NODE_NAME, or the hostname)
    # The kernel it runs on (boot id, or WATTSWEEP_HOST_ID): containers of one node share it, hostnames differ.
    host_id: Mapped[str | None] = mapped_column(String(100), index=True)
    device: Mapped[str] = mapped_column(String(20))  # cpu | cuda:N | a group: cuda:0-3 (physical indexes)
    # Physical (NVML) indexes of the GPUs it holds, for the one-worker-per-GPU check of a host (0028); NULL: none.
    gpu_indexes: Mapped[list[int] | None] = mapped_column(JSON)
    hardware_class: Mapped[str] = mapped_column(String(100))
    inventory: Mapped[dict[str, Any]]  # CPU, RAM, GPU, driver, CUDA, OS, library versions
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)  # database server clock
    current_job_id: Mapped[int | None] = mapped_column(Integer)  # the job it has joined (model loaded, claiming)
    token: Mapped[str | None] = mapped_column(String(64))  # the live process's token: one process per worker id
    stopped_reason: Mapped[str | None] = mapped_column(Text)  # why it stopped taking work (alive but not consuming)
    baseline_since: Mapped[datetime | None]  # measuring its idle baseline since (server clock); else NULL


class PowerLimitSet(Base):
    """A power limit a worker set on one GPU (migration 0027), so that it can be put back even after the process died.

    Written before NVML is asked to set it; `restored_at` once the previous limit is back. A worker that starts on
    a host finds the rows of its GPUs without `restored_at` (a SIGKILL, a lost node) and restores `previous_w`.
    """

    __tablename__ = "power_limits_set"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[str] = mapped_column(String(100))  # the kernel (boot id): where the GPU is
    gpu_uuid: Mapped[str] = mapped_column(String(100))
    previous_w: Mapped[float] = mapped_column(Float)  # the limit found before the first set: what goes back
    set_w: Mapped[float] = mapped_column(Float)  # the limit in force now (the last cell's)
    worker_id: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "host_id", "gpu_uuid"),)


class ReferenceResult(Base):
    """One model's published result in a reference set (AI Energy Score's leaderboard), for stars against it.

    Not a measurement: no windows, no runs. GPU energy per 1,000 queries as published, the size class the
    publisher gave (text generation, reasoning) and the stars it published, kept to compare (migration 0025).
    """

    __tablename__ = "reference_results"
    __table_args__ = (UniqueConstraint("name", "task", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)  # the reference set, e.g. "aienergyscore"
    task: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(300))
    size_class: Mapped[str | None] = mapped_column(String(2))
    gpu_kwh_per_1k: Mapped[float] = mapped_column(Float)
    published_stars: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(300))  # file name and SHA-256
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServingRun(Base):
    """A served unit's figures (migration 0020, worker/engines/figures.py): its requests and tokens as the engine
    counted them (`usage`), the latencies the client saw, and the steady part of its window.

    The steady part's energy is stored per component as the meter read it (node-wide CPU and RAM, like
    `measurements.cpu_energy_kwh`); v_serving turns it into the headline (own GPU + attributed CPU and RAM, by the
    window's attributed share) and divides by the tokens and requests inside the steady part.
    """

    __tablename__ = "serving_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    shard_id: Mapped[int] = mapped_column(Integer, unique=True)  # the unit: stored once
    concurrency: Mapped[int | None] = mapped_column(Integer)
    request_rate: Mapped[float | None] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer)
    failed_requests: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    steady_started_at: Mapped[datetime | None]
    steady_ended_at: Mapped[datetime | None]
    steady_duration_s: Mapped[float | None] = mapped_column(Float)
    steady_cpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    steady_gpu_energy_kwh: Mapped[float | None] = mapped_column(Float)
    steady_ram_energy_kwh: Mapped[float | None] = mapped_column(Float)
    steady_output_tokens: Mapped[float | None] = mapped_column(Float)
    steady_requests: Mapped[float | None] = mapped_column(Float)  # request-equivalents (share of each one's tokens)
    ttft_p50_s: Mapped[float | None] = mapped_column(Float)
    ttft_p90_s: Mapped[float | None] = mapped_column(Float)
    ttft_p99_s: Mapped[float | None] = mapped_column(Float)
    itl_p50_s: Mapped[float | None] = mapped_column(Float)  # gaps between streamed chunks
    itl_p90_s: Mapped[float | None] = mapped_column(Float)
    itl_p99_s: Mapped[float | None] = mapped_column(Float)
    tpot_p50_s: Mapped[float | None] = mapped_column(Float)
    e2e_p50_s: Mapped[float | None] = mapped_column(Float)
    e2e_p99_s: Mapped[float | None] = mapped_column(Float)
    throughput_output_tokens_per_s: Mapped[float | None] = mapped_column(Float)  # in the steady part
    client_ttft_mean_s: Mapped[float | None] = mapped_column(Float)  # beside the engine's own histograms' means
    client_itl_mean_s: Mapped[float | None] = mapped_column(Float)
    client_e2e_mean_s: Mapped[float | None] = mapped_column(Float)
    engine_ttft_mean_s: Mapped[float | None] = mapped_column(Float)
    engine_itl_mean_s: Mapped[float | None] = mapped_column(Float)
    engine_e2e_mean_s: Mapped[float | None] = mapped_column(Float)
    preemptions: Mapped[float | None] = mapped_column(Float)
    kv_cache_peak: Mapped[float | None] = mapped_column(Float)  # 0-1
    engine_load_mean: Mapped[float | None] = mapped_column(Float)  # its running + waiting over the steady part
    # no-steady-state, steady-short, steady-prorated, client-late (the client's latencies NULL), ...
    flags: Mapped[str | None] = mapped_column(String(300))
    load_samples: Mapped[dict[str, Any] | None]  # {"t_s", "in_flight", "running", "waiting"}
    request_latencies: Mapped[Any | None] = mapped_column(JSON)  # one {sent_s, ttft_s, e2e_s, output_tokens} each
