"""A worker's decisions between units, as a generator: the same code drives real workers and the replay simulator.

`WorkLoop.serve(hint)` handles one message: it joins jobs through db.queue.staffing and claims
units through db.queue.leases (the policy is db.queue.policy's), yields `Load` and `Execute`
requests to whoever runs the work, and stores what comes back. A real worker
(worker.process.executor) loads models and measures; bench/replay.py --simulate
advances a simulated clock instead. Nothing here imports a GPU stack or the
broker: sending a message and reading the queue's length are callbacks.

Per message: at most `joins` jobs joined (one for a broker message: the
broker paces joins, and a lost message is found by reconcile), units of the
loaded job claimed one at a time (affinity), a message sent for the job the
message named if another job was chosen and nobody works on it, and a recruit
message when the queue is empty and a job being worked on is worth one more
worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from db.queue.leases import Lease, LeaseLost, UnitClaim, claim_next, fail, release
from db.queue.staffing import JoinResult, fail_load, join_job, leave, mark_unavailable, recruit, rejoin

if TYPE_CHECKING:  # for annotations only: this module imports no meter and no workload
    from sqlalchemy.orm import Session

    from worker.measure.meter import Reading
    from worker.workloads.base import WorkDone

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Load:
    """Load the model of the job `claim` joined (the claim's unit is leased meanwhile)."""

    claim: UnitClaim


@dataclass(frozen=True)
class Execute:
    """Run one unit; answer with Measured, Failed, or Stop (handed back unmeasured)."""

    claim: UnitClaim


@dataclass(frozen=True)
class Measured:
    reading: Reading | None = None
    units: WorkDone | None = None
    prefill: Reading | None = None
    baseline_id: int | None = None
    prefill_units: WorkDone | None = None  # the prefill window's own units (one new token per query), not the query's


@dataclass(frozen=True)
class Loaded:
    """The model loaded; `store` writes the load window under the unit's lease (returns False if lost)."""

    store: Callable[[UnitClaim], bool] | None = None


@dataclass(frozen=True)
class Failed:
    error: str
    unavailable: bool = False  # the model or dataset is not on this node: hand back, never count it
    final: bool = False  # (loads) fail the job at once: local mode, where no other node could have it
    device_lost: bool = False  # the accelerator's context is dead: this unit fails, the process takes no more


@dataclass(frozen=True)
class Stop:
    """The worker is shutting down: hand the unit back unmeasured."""


Answer = Loaded | Measured | Failed | Stop  # what the caller sends back for a Load or an Execute


class Transact(Protocol):
    """Run work(session) in one transaction (with retries) and return its value."""

    def __call__(self, work: Callable[[Session], T], /) -> T: ...


def _hold_nothing(shard_id: int | None) -> None:
    pass


def _always_take_over() -> bool:
    return True


def _ignore_event(kind: str, job_id: int, detail: str) -> None:
    pass


@dataclass(frozen=True)
class LoopHooks:
    """Everything the loop calls outside itself: the database, the broker, the heartbeat, events and time."""

    transact: Transact  # the database: each decision is one transaction
    send: Callable[[int], None] | None = None  # send a job id as a message (None: no broker, nothing is sent)
    queue_length: Callable[[], int] | None = None  # messages waiting (None: never recruit)
    hold: Callable[[int | None], None] = _hold_nothing  # the unit the heartbeat keeps leased (None: none)
    may_take_over: Callable[[], bool] = _always_take_over  # whether stale leases may be taken over now
    on_event: Callable[[str, int, str], None] = _ignore_event  # (kind, job id, detail): loaded, run, finished
    clock: Callable[[], float] = time.monotonic  # seconds, for the recruit rate limit


class WorkLoop:
    """One worker process's claiming state: lease identity, the job whose model it holds, its failure streak."""

    def __init__(self, *, lease: Lease, hardware_class: str, lease_timeout_s: float, hooks: LoopHooks,
                 mode: str | None = "distributed", sweep_id: int | None = None,
                 max_consecutive_failures: int | None = None, recruit_every_s: float = 1.0, gpus: int = 1):
        self.lease, self.hardware_class, self.lease_timeout_s = lease, hardware_class, lease_timeout_s
        self.gpus = gpus  # the worker's group size: it joins only jobs needing exactly that many GPUs
        self.transact, self.mode, self.sweep_id = hooks.transact, mode, sweep_id
        self.send, self.queue_length = hooks.send, hooks.queue_length
        self.hold = hooks.hold
        self.may_take_over = hooks.may_take_over
        self.max_consecutive_failures = max_consecutive_failures
        self.on_event = hooks.on_event
        self.loaded_job_id: int | None = None  # the job whose model this process holds
        self.joined_job_id: int | None = None  # the job the database counts this worker on
        self.consecutive_failures = 0
        self.stopped_reason: str | None = None  # set once it stops taking work (failure streak, device lost)
        self.device_lost = False  # the process must exit: its accelerator context is dead
        self.loads = 0
        self.clock = hooks.clock
        self.recruit_every_s = recruit_every_s
        self._recruited_at: float | None = None

    # --- one message

    def serve(self, hint: int | None = None, *, joins: int = 1, only_job_id: int | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> Generator[Load | Execute, Answer | None, str]:
        """Work until nothing is left for this message; returns what happened (for the log)."""
        outcome, joined, claim = "skipped", 0, None
        while self.stopped_reason is None:
            if claim is None:
                if should_stop():
                    break
                result = self._next(hint, allow_join=joined < joins, only_job_id=only_job_id)
                if result.hint_needs_message:
                    self._send(hint)
                if result.host_busy and result.claim is None:
                    return "host-busy"
                claim = result.claim
                if claim is None:
                    break
            if claim.joined:
                joined += 1
                self.joined_job_id = claim.job_id
                self.hold(claim.shard_id)  # a long load must not let the unit's lease go stale
                loaded = yield Load(claim)
                self.hold(None)
                if isinstance(loaded, Failed):
                    outcome = self._load_failed(claim, loaded)
                    claim = None
                    continue
                self.loaded_job_id = claim.job_id
                self.loads += 1
                if loaded.store is not None and not loaded.store(claim):
                    log.warning("job %s: lease lost while loading; its load window was not stored", claim.job_id)
                    self.loaded_job_id = self.joined_job_id = None
                    claim = None
                    continue
                self.on_event("loaded", claim.job_id, "")
            self._recruit()
            self.hold(claim.shard_id)
            result = yield Execute(claim)
            self.hold(None)
            claim, step = self._after(claim, result, should_stop)
            if step == "handed-back":
                return step
            if step != "worked" or outcome == "skipped":
                outcome = step
        if self.joined_job_id is not None:
            job_id = self.joined_job_id
            status = self.transact(lambda s: leave(s, lease=self.lease, job_id=job_id))
            self.joined_job_id = None
            self.on_event("finished", job_id, status)
            if outcome not in ("skipped", "host-busy"):
                outcome = status
        self._recruit()
        return outcome

    def _next(self, hint: int | None, *, allow_join: bool, only_job_id: int | None) -> JoinResult:
        take_over = self.may_take_over()
        loaded = self.loaded_job_id
        joined = self.joined_job_id

        def work(session) -> JoinResult:
            if loaded is not None and (only_job_id is None or only_job_id == loaded):  # affinity first
                claim = claim_next(session, lease=self.lease, job_id=loaded, lease_timeout_s=self.lease_timeout_s,
                                   may_take_over=take_over)
                if claim is not None:
                    if joined != loaded:  # back to a model we still hold: no reload, but we work on it again
                        rejoin(session, lease=self.lease, job_id=loaded)
                    return JoinResult(claim)
            if joined is not None:
                leave(session, lease=self.lease, job_id=joined)
            if not allow_join:
                return JoinResult(None)
            return join_job(session, lease=self.lease, hardware_class=self.hardware_class,
                            lease_timeout_s=self.lease_timeout_s, mode=self.mode, hint=hint, sweep_id=self.sweep_id,
                            only_job_id=only_job_id, may_take_over=take_over, gpus=self.gpus)

        result = self.transact(work)
        if result.claim is not None and not result.claim.joined:
            self.joined_job_id = result.claim.job_id
        elif self.joined_job_id is not None and (result.claim is None or result.claim.joined):
            self.joined_job_id = None
        if result.claim is not None and result.claim.joined:
            self.loaded_job_id = None  # the old model goes: the caller loads the new job's
        return result

    def _after(self, claim: UnitClaim, result: Answer | None, should_stop) -> tuple[UnitClaim | None, str]:
        """Store or hand back one unit; returns the next claim of the same job (or None) and the outcome so far."""
        if isinstance(result, Stop):
            self.transact(lambda s: release(s, lease=self.lease, shard_id=claim.shard_id))
            return None, self._hand_back(claim.job_id)
        if isinstance(result, Failed):
            if result.unavailable:
                self._unavailable(claim, result.error)
                return None, "unavailable"
            status = self.transact(lambda s: fail(s, lease=self.lease, shard_id=claim.shard_id, error=result.error))
            self._count_failure(result.error)
            if result.device_lost:  # every later unit would fail on the same dead context: claim nothing more
                self.device_lost = True
                self.stopped_reason = f"device lost: {result.error}"[:2000]
            log.warning("job %s unit %s failed (%s): %s", claim.job_id, claim.shard_id, status, result.error)
            return None, "failed-unit"
        from db.queue.unit_store import store_unit

        stop = should_stop()
        take_over = self.may_take_over()
        try:
            stored = self.transact(lambda s: store_unit(
                s, lease=self.lease, claim=claim, reading=result.reading, units=result.units, prefill=result.prefill,
                prefill_units=result.prefill_units, baseline_id=result.baseline_id, claim_next_unit=not stop,
                lease_timeout_s=self.lease_timeout_s, may_take_over=take_over))
        except LeaseLost as error:
            log.warning("%s", error)
            return None, "lost"
        self.consecutive_failures = 0
        if stored.run_done:
            self.on_event("run", claim.job_id, claim.dataset)
        if stop:
            return None, self._hand_back(claim.job_id)
        if stored.next is None and stored.job_status is not None:
            self.on_event("finished", claim.job_id, stored.job_status)
        return stored.next, "done" if stored.next is None and stored.job_status == "done" else "worked"

    def _hand_back(self, job_id: int) -> str:
        status = self.transact(lambda s: leave(s, lease=self.lease, job_id=job_id, handed_back=True))
        self.loaded_job_id = self.joined_job_id = None
        log.info("job %s handed back before its next run (worker stopping)", job_id)
        self.on_event("finished", job_id, "handed-back")
        if status in ("queued", "running"):
            self._send(job_id)
        return "handed-back"

    def _load_failed(self, claim: UnitClaim, failed: Failed) -> str:
        self.loaded_job_id = self.joined_job_id = None
        if failed.unavailable:
            self._unavailable(claim, failed.error)
            return "unavailable"
        status = self.transact(lambda s: fail_load(s, lease=self.lease, job_id=claim.job_id, shard_id=claim.shard_id,
                                                   error=failed.error, final=failed.final))
        self._count_failure(failed.error)
        if failed.device_lost:
            self.device_lost = True
            self.stopped_reason = f"device lost: {failed.error}"[:2000]
        self.on_event("finished", claim.job_id, f"{status}: {failed.error}")
        if status in ("queued", "running"):
            self._send(claim.job_id)  # another attempt, on whichever worker takes it
        return status

    def _unavailable(self, claim: UnitClaim, error: str) -> None:
        status = self.transact(lambda s: mark_unavailable(
            s, lease=self.lease, job_id=claim.job_id, shard_id=claim.shard_id, error=error,
            hardware_class=self.hardware_class, lease_timeout_s=self.lease_timeout_s))
        self.loaded_job_id = self.joined_job_id = None
        log.warning("job %s is not available on this node, handed back (this worker stops taking it): %s",
                    claim.job_id, error)
        self.on_event("finished", claim.job_id, f"{status}: {error}")
        if status in ("queued", "running"):
            self._send(claim.job_id)

    def _count_failure(self, error: str) -> None:
        self.consecutive_failures += 1
        limit = self.max_consecutive_failures
        if limit and self.consecutive_failures >= limit and self.stopped_reason is None:
            self.stopped_reason = f"{self.consecutive_failures} units failed in a row; last: {error}"[:2000]

    def _send(self, job_id: int | None) -> None:
        if job_id is not None and self.send is not None:
            self.send(job_id)

    def recruit_now(self) -> None:
        """Look for a job worth one more worker now (a worker that just started), whatever the rate limit."""
        self._recruited_at = None
        self._recruit()

    def _recruit(self) -> None:
        """An empty queue and a job worth one more worker: send its id, so that an idle worker joins it."""
        if self.send is None or self.queue_length is None:
            return
        now = self.clock()
        if self._recruited_at is not None and now - self._recruited_at < self.recruit_every_s:
            return  # at most once a second per worker: the check reads every claimable unit of the queue
        self._recruited_at = now
        if self.queue_length() > 0:
            return
        target = self.transact(lambda s: recruit(s, lease=self.lease, hardware_class=self.hardware_class,
                                                 lease_timeout_s=self.lease_timeout_s, mode=self.mode,
                                                 gpus=self.gpus))
        if target is not None:
            self.send(target)
