"""A worker process's identity, its database handle and its meters."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.settings import get_settings
from worker.measure.meter import Meter
from worker.process.inventory import collect_inventory, display_name, host_identity


@dataclass
class WorkerRuntime:
    worker_id: str  # e.g. gpu0@node7
    device: str  # torch device string inside this process: cpu | cuda:0
    hardware_class: str
    sessions: sessionmaker[Session]
    gpu_ids: list[int] | None = None  # physical GPU indices CodeCarbon must read (pinned: one)
    gpus: int = 1  # the group size: the worker takes only jobs needing exactly this many GPUs (jobs.gpus)
    mig_uuid: str | None = None  # the MIG slice of gpu_ids[0] this worker computes on
    simulated_gpu: bool = False  # tests: the simulated GPU node (torch on the CPU, the GPU metered via NVML)
    # Local: one machine, so a model that fails to load fails its job at once. Distributed: another node may
    # have the folder or the memory, so the failure counts as one attempt of max_attempts.
    load_failure_is_final: bool = True
    baseline_window_s: float = field(default_factory=lambda: get_settings().baseline_window_s)
    baseline_max_age_s: float = field(default_factory=lambda: get_settings().baseline_max_age_s)
    # The kernel this process runs on (co-location) and the node's display name; from the settings by default.
    host_id: str = field(default_factory=lambda: host_identity(get_settings().host_id))
    hostname: str = field(default_factory=lambda: display_name(get_settings().node_name))
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # this process: leases name it
    _meters: dict[tuple, Meter] = field(default_factory=dict)
    _baseline: dict[str, Any] | None = None  # the baseline in use: id, at (monotonic), temperature_c, used

    def register(self, gpu: dict[str, Any] | None = None, twin_window_s: float | None = None) -> bool:
        """Insert or refresh this worker's row with its inventory and this process's token, atomically.

        False (nothing written) when another live process holds the worker id: its heartbeat is newer than
        `twin_window_s` (None: take the id over, as local mode does with its per-process ids).
        """
        from db.queue.live import register_worker

        with self.sessions.begin() as session:
            return register_worker(session, worker_id=self.worker_id, token=self.token, hostname=self.hostname,
                                   host_id=self.host_id, device=self.device, hardware_class=self.hardware_class,
                                   inventory=collect_inventory(gpu), twin_window_s=twin_window_s)

    def meter_for(self, *, country_iso_code: str | None, region: str | None, grid_intensity_g_per_kwh: float | None,
                  pue: float = 1.0):
        """One meter per carbon setting, reused across jobs (CodeCarbon's start-up costs a second)."""
        key = (country_iso_code, region, grid_intensity_g_per_kwh, pue)
        if key not in self._meters:
            self._meters[key] = Meter(
                country_iso_code=country_iso_code,
                region=region,
                grid_intensity_g_per_kwh=grid_intensity_g_per_kwh,
                pue=pue,
                # NVML ignores CUDA_VISIBLE_DEVICES: a CPU worker on a GPU node must ask for no GPU, not all.
                gpu_ids=list(self.gpu_ids) if self.gpu_ids else [],
                mig_uuid=self.mig_uuid,
                synchronize=_synchronizer(self.device),
                extra_flags=("simulated-gpu",) if self.simulated_gpu else (),
            )
        return self._meters[key]

    def ensure_baseline(self, meter: Meter, *, for_run: bool = False, per_run: bool = False) -> int | None:
        """The id of the idle baseline to subtract, measuring one first when it is needed (worker.measure.baseline):
        none yet, too old, the device's temperature now more than the drift from the baseline's, or
        `per_run` and the last one was used by a run already. `for_run`: a run starts after this.

        Idle power (nothing running on this worker) is subtracted from each
        window to give net energy: the study added seven idle GPUs to every figure.
        """
        from worker.measure.baseline import remeasure_reason, take_baseline

        policy = self.baseline_policy()
        if policy.window_s <= 0:
            return None
        state = meter.device_state()
        reason = remeasure_reason(current=self._baseline, now=time.monotonic(), policy=policy, per_run=per_run,
                                  temperature_c=state.temperature_c if state else None)
        if reason is not None:
            from db.retry import run_in_transaction

            def transact(work):  # a worker holding a unit waits out a database outage here too
                return run_in_transaction(self.sessions, work, retry_for_s=get_settings().db_retry_s,
                                          max_wait_s=max(get_settings().heartbeat_interval_s, 1.0))

            baseline_id, began = take_baseline(meter, transact=transact, worker_id=self.worker_id,
                                               hostname=self.hostname, host_id=self.host_id, policy=policy,
                                               reason=reason, lease_timeout_s=get_settings().lease_timeout_s)
            self._baseline = {"id": baseline_id, "at": time.monotonic(), "used": False,
                              "temperature_c": began.temperature_c if began else None}
        if for_run:
            self._baseline["used"] = True
        return self._baseline["id"]

    def baseline_policy(self):
        from worker.measure.baseline import BaselinePolicy

        return BaselinePolicy.from_settings(window_s=self.baseline_window_s, max_age_s=self.baseline_max_age_s)

    def close(self) -> None:
        for meter in self._meters.values():
            meter.close()
        self._meters.clear()


def _synchronizer(device: str):
    if not device.startswith("cuda"):
        return None

    def synchronize() -> None:
        import torch

        torch.cuda.synchronize()

    return synchronize


def local_worker_id() -> str:
    return f"local{os.getpid()}@{display_name(get_settings().node_name)}"  # two local runs on one host: two workers
