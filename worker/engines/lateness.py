"""Whether the load client read a served run's chunks late: then the latencies it recorded are its own lateness,
not the server's, and none is stored as a figure (worker.engines.figures).

The client stamps what it reads when its loop wakes for the socket (worker.engines.transfers), so the chunks read
in one wake-up share one stamp. A client that has a core when it needs one reads each chunk in a wake-up of its
own: vLLM writes a request's chunks one engine step apart (2-3 ms on the 2-core dev VM, tens of ms on a GPU
under load), and the client wakes within 0.1 ms of a write (bench/serving.py, --client-rt). A client descheduled
behind the engine wakes late and reads what piled up together: on the loaded 2-core VM all of a request's chunks
in one read at 1 in flight, vLLM having written each on time; its TTFT read +300% to +2000% against vLLM's
histogram, its inter-token gaps 0 (README, "Figures per run").

The rule, `client-late` when either holds:

1. At least LATE_READ_SHARE (1%) of the run's gaps between a request's consecutive token chunks are exactly 0,
   each request's last gap left out. A gap of exactly 0 is a chunk read in the same wake-up as the one before it:
   that one had waited unread for at least a whole inter-token interval. 1% because the headline latency is p99
   inter-token latency (the Pareto front): each burst puts a 0 at the bottom of the gaps and the wait it held at
   the top, so once 1% of the gaps are bursts the p99 is the client's. The last gap is left out because an
   OpenAI-compatible server may end a stream with a chunk of its own for the finish reason, written right after
   the last token's (vLLM does not).
2. The engine's own inter-token histogram was scraped around the run (worker.engines.metrics.run_means) and the
   client's mean gap is under ITL_AGREEMENT (90%) of the engine's mean. Each request's gaps add up to the span
   from its first chunk read to its last, so the client's mean can be below the engine's (whose clock is the
   engine core's steps) only where the first chunk was read later than the last: the TTFT holds that lateness.
   Chunks of several tokens make the client's mean larger, never smaller. On time, the two agreed within 1%
   (bench/serving.py); 90% is the issue's agreement target. This catches lateness that rule 1 misses where the
   late reads are split over wake-ups a few microseconds apart.

Why no figure rather than a corrected one: the client knows only a lower bound of its lateness (one interval per
burst), and TTFT, TPOT and end-to-end latency are all read times, so each holds an unknown part of it; gaps read
as 0 are not measurements (like a GPU energy of 0, README), and a gap over separate reads after a burst holds the
wait. The engine's own histogram means (engine_*_mean_s) and every energy figure are unaffected and stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.engines.metrics import HistogramMeans
from worker.engines.records import RequestRecord

FLAG = "client-late"
LATE_READ_SHARE = 0.01
ITL_AGREEMENT = 0.9


@dataclass(frozen=True)
class Lateness:
    same_read_gaps: int  # gaps of exactly 0 (each request's last gap left out)
    gaps: int  # the gaps counted
    client_itl_mean_s: float | None  # over every gap of the run's completed requests
    engine_itl_mean_s: float | None

    @property
    def same_read_share(self) -> float | None:
        return self.same_read_gaps / self.gaps if self.gaps else None

    @property
    def late(self) -> bool:
        share = self.same_read_share
        if share is not None and share >= LATE_READ_SHARE:
            return True
        client, engine = self.client_itl_mean_s, self.engine_itl_mean_s
        return client is not None and bool(engine) and client < ITL_AGREEMENT * engine

    @property
    def flags(self) -> tuple[str, ...]:
        return (FLAG,) if self.late else ()

    def describe(self) -> str:
        share = self.same_read_share
        said = [f"{self.same_read_gaps} of {self.gaps} chunk gaps read in one wake-up"
                + (f" ({share:.1%})" if share is not None else "")]
        if self.client_itl_mean_s is not None and self.engine_itl_mean_s:
            said.append(f"client's mean gap {self.client_itl_mean_s * 1e3:.2f} ms, the engine's "
                        f"{self.engine_itl_mean_s * 1e3:.2f} ms")
        return "; ".join(said)


def lateness(records: Iterable[RequestRecord], engine: HistogramMeans | None) -> Lateness:
    """The rule's evidence over the completed requests (the module's docstring says why)."""
    same = counted = 0
    span = chunk_gaps = 0.0
    for record in records:
        if record.error is not None or len(record.chunk_at) < 2:
            continue
        gaps = record.gaps_s()
        span += record.chunk_at[-1] - record.chunk_at[0]
        chunk_gaps += len(gaps)
        counted += len(gaps) - 1
        same += sum(gap == 0 for gap in gaps[:-1])
    return Lateness(same, counted, span / chunk_gaps if chunk_gaps else None, engine.itl_s if engine else None)
