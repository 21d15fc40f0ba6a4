"""The `power_limit_w` axis on a worker: set the limit of the worker's GPUs for a cell, and always put it back.

The executor applies a job's limit before its load window (so the load is measured under it too) and before each
unit (a worker that comes back to a loaded job by affinity), and restores the previous limit when it leaves the
job: at the end of each message's work (worker.process.executor.UnitExecutor.drive), when it unloads, and when the
worker stops (SIGTERM's warm shutdown ends there too). What a worker set is in the database before NVML is asked
(db.queue.power_limits), so that the next worker started on the host after a SIGKILL restores it
(`restore_left_over`). A group worker sets every GPU of its group alike; the read-back stored with each window is
the lowest of the group's. NVML itself is reached through worker.measure.power_limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from worker.measure.power_limit import PowerLimitError, PowerLimits

log = logging.getLogger(__name__)

__all__ = ["PowerLimitError", "PowerLimiter"]


@dataclass(frozen=True)
class _Changed:
    uuid: str
    previous_w: float  # found before this worker's first set: what goes back
    row_id: int


class PowerLimiter:
    """One worker's GPUs' power limit: the one its current cell asked for, or the one it found."""

    def __init__(self, *, gpu_ids: list[int] | None, mig_uuid: str | None, host_id: str, worker_id: str,
                 transact: Callable[[Callable], Any], nvml: Any = None) -> None:
        self.gpu_ids = list(gpu_ids or [])
        self.mig_uuid = mig_uuid
        self.host_id, self.worker_id = host_id, worker_id
        self._transact = transact
        self._nvml = nvml
        self._limits: PowerLimits | None = None
        self._changed: dict[int, _Changed] = {}  # physical index -> what to put back
        self.set_w: float | None = None  # the limit in force for the current cell (None: the found one)
        self.read_w: float | None = None  # what NVML answered right after setting it

    def apply(self, watts: float | None) -> None:
        """The cell's limit on every GPU of the worker (None: the limit it found). Raises PowerLimitError, one line,
        before any GPU changed where the limit is outside a GPU's range or this worker has no GPU of its own."""
        if watts is None:
            self.restore()
            return
        watts = float(watts)
        if not self.gpu_ids:
            raise PowerLimitError(f"power_limit_w {watts:g} W needs a GPU, and this worker computes on the CPU (local "
                                  "runs do too): run the cell on `wattsweep worker --gpu N`")
        if self.mig_uuid:
            raise PowerLimitError(f"power_limit_w {watts:g} W cannot be set from a MIG slice: the limit is the whole "
                                  "GPU's, shared with its other slices")
        if self.set_w == watts:
            return
        limits = self._open()
        found = [limits.read(index) for index in self.gpu_ids]
        for gpu in found:
            if problem := gpu.range_problem(watts):
                raise PowerLimitError(problem)
        read = []
        try:
            for gpu in found:
                read.append(self._set(limits, gpu.index, gpu.uuid, gpu.limit_w, watts))
        except Exception:
            self.restore()  # the group's GPUs already changed go back; the job fails with the error
            raise
        self.set_w, self.read_w = watts, min(read)
        log.info("power limit of GPU(s) %s set to %g W (read back %g W)", self.gpu_ids, watts, self.read_w)

    def _set(self, limits: PowerLimits, index: int, uuid: str, found_w: float, watts: float) -> float:
        from db.queue.power_limits import mark_restored, record_change, record_set

        changed = self._changed.get(index)
        if changed is None:  # recorded first: a worker killed between the two steps leaves a row to restore
            row_id = self._transact(lambda s: record_set(s, host_id=self.host_id, gpu_uuid=uuid, previous_w=found_w,
                                                         set_w=watts, worker_id=self.worker_id))
            try:
                read_w = limits.set(index, watts)
            except PowerLimitError:  # nothing changed on this GPU: nothing to put back
                self._transact(lambda s: mark_restored(s, row_id=row_id))
                raise
            self._changed[index] = _Changed(uuid, found_w, row_id)
            return read_w
        self._transact(lambda s: record_change(s, row_id=changed.row_id, set_w=watts))
        return limits.set(index, watts)

    def restore(self) -> None:
        """Put back the limit found before this worker changed it; never raises (a failure is logged, and the next
        worker start on this host tries again: the row stays unrestored)."""
        from db.queue.power_limits import mark_restored

        self.set_w = self.read_w = None
        for index, changed in list(self._changed.items()):
            try:
                self._open().set(index, changed.previous_w)
                self._transact(lambda s, row_id=changed.row_id: mark_restored(s, row_id=row_id))
            except Exception as error:
                log.warning("could not put GPU %s's power limit back to %g W (%s); the next worker started on this "
                            "host tries again", index, changed.previous_w, error)
                continue
            del self._changed[index]
            log.info("power limit of GPU %s put back to %g W", index, changed.previous_w)

    def restore_left_over(self) -> list[str]:
        """At start: limits set on this worker's GPUs by a worker that died before putting them back (the database
        says which, and what was there before); put back now. Returns one line per GPU restored."""
        from db.queue.power_limits import left_over, mark_restored

        if not self.gpu_ids or self.mig_uuid:
            return []
        limits = self._open()
        uuids = {limits.read(index).uuid: index for index in self.gpu_ids}
        rows = self._transact(lambda s: [(r.id, r.gpu_uuid, r.previous_w, r.set_w, r.worker_id)
                                         for r in left_over(s, host_id=self.host_id, gpu_uuids=list(uuids))])
        restored = []
        for uuid, index in uuids.items():
            mine = [row for row in rows if row[1] == uuid]
            if not mine:
                continue
            _, _, previous_w, set_w, worker_id = mine[0]  # the oldest row holds the limit found before any
            limits.set(index, previous_w)
            for row_id, *_ in mine:
                self._transact(lambda s, row_id=row_id: mark_restored(s, row_id=row_id))
            restored.append(f"GPU {index}: power limit put back to {previous_w:g} W ({set_w:g} W was set by "
                            f"{worker_id}, which did not restore it)")
        return restored

    def stamp(self, reading):
        """`reading` (worker.measure.meter.Reading) with the limit set for it and the one read back."""
        if reading is None or self.set_w is None:
            return reading
        return replace(reading, power_limit_set_w=self.set_w, power_limit_read_w=self.read_w)

    def _open(self) -> PowerLimits:
        if self._limits is None:
            self._limits = PowerLimits(self.gpu_ids, nvml=self._nvml)
        return self._limits

    def close(self) -> None:
        self.restore()
        if self._limits is not None:
            self._limits.close()
            self._limits = None
