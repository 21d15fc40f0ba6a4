"""What the host of a simulated node drew while its workers' windows were open, and what attribution's rule gives
those windows: what the attribution tests compare stored windows with.

The rule (db/results/attribution.py) charges a window, for each of its host samples, the sample's energy times the
mean of 1/k over it (k: the host's windows open at that instant). Co-located windows' shares add up to what the
host drew exactly when the host's power is even inside each sample in which k changes. The tests' host power steps
up to 4x every second, and their windows last a second or so, with 0.5 s samples, so many samples hold both a step
and a change of k: the sum then misses the drawn energy by a few percent either way (-2.5% to +0.9% in every drain
of test_gpu_node and test_device_groups measured; up to 5% with the steps shifted at random over the same windows).
That is the rule's resolution, which bench/attribution.py measures on longer windows. So the pipeline is checked
against the rule itself: applied to the stored samples (exactly), and applied to what the counters' readers saw
between the samples' stamps (up to the few ms a reading is taken from its stamp). k is counted here from the
windows' stamps, independently of attribution.py's Concurrency.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest

from tests.simnode import SimNode

J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class HostTruth:
    drawn_cpu_j: float  # what readers of the package counters saw them advance while any window was open
    open_s: float  # how long any window was open
    rule_cpu_j: float  # the rule applied to the windows' stored samples: what their attributed CPU should sum to
    rule_drawn_cpu_j: float  # the rule applied to what the counters advanced between the samples' stamps
    rule_ram_j: float  # the rule applied to the stored RAM samples
    ram_w: float  # CodeCarbon's RAM power for the host (the windows' median: each reads a few ms off its stamps)


def host_truth(node: SimNode, windows: Sequence[Any]) -> HostTruth:
    """`windows`: every stored Measurement row of the node's host (started_at, ended_at, host_samples, CPU kWh)."""
    origin = min(w.started_at for w in windows)  # seconds from here, exact to the stored microsecond
    spans = [((w.started_at - origin).total_seconds(), (w.ended_at - origin).total_seconds()) for w in windows]
    union: list[list[float]] = []  # the times any window was open, as disjoint intervals
    for start, end in sorted(spans):
        if union and start <= union[-1][1]:
            union[-1][1] = max(union[-1][1], end)
        else:
            union.append([start, end])
    updates = node.rapl_updates()

    def read_j(a: float, b: float) -> float:
        return node.host_energy_read_j(origin.timestamp() + a, origin.timestamp() + b, updates)

    def mean_inverse_k(a: float, b: float) -> float:
        if b <= a:
            return 1.0
        total = 0.0
        for left, right in pairwise(sorted({a, b} | {t for span in spans for t in span if a < t < b})):
            middle = (left + right) / 2
            k = sum(1 for start, end in spans if start <= middle < end)
            total += (right - left) / k if k else 0.0
        return total / (b - a) or 1.0  # the window itself is open

    rule_j = {"cpu_j": 0.0, "ram_j": 0.0}
    rule_drawn_j = 0.0
    for window, (start, end) in zip(windows, spans, strict=True):
        stored_j = {"cpu_j": window.cpu_energy_kwh * J_PER_KWH, "ram_j": window.ram_energy_kwh * J_PER_KWH}
        samples = window.host_samples or {"t_s": [end - start], **{kind: [j] for kind, j in stored_j.items()}}
        weighted, left = {"cpu_j": 0.0, "ram_j": 0.0}, start
        for i, offset in enumerate(samples["t_s"]):
            right = end if i == len(samples["t_s"]) - 1 else min(max(start + offset, left), end)
            share = mean_inverse_k(left, right)
            for kind in weighted:
                weighted[kind] += samples[kind][i] * share
            rule_drawn_j += read_j(left, right) * share
            left = right
        for kind, total in weighted.items():  # the samples say how the window's stored energy was spread in time
            read = sum(samples[kind])
            rule_j[kind] += stored_j[kind] * (total / read if read > 0 else 1.0)
    ram_w = statistics.median(w.ram_energy_kwh * J_PER_KWH / (end - start) for w, (start, end) in zip(windows, spans,
                                                                                                       strict=True))
    return HostTruth(drawn_cpu_j=sum(read_j(a, b) for a, b in union), open_s=sum(b - a for a, b in union),
                     rule_cpu_j=rule_j["cpu_j"], rule_drawn_cpu_j=rule_drawn_j, rule_ram_j=rule_j["ram_j"],
                     ram_w=ram_w)


def assert_host_counted_once(node: SimNode, windows: Sequence[Any]) -> HostTruth:
    """The attributed CPU and RAM energy of every window the node's host stored add up to what the host drew."""
    truth = host_truth(node, windows)
    attributed_cpu_j = sum(w.cpu_energy_attributed_kwh for w in windows) * J_PER_KWH
    # The sharing, exactly: each window's CPU reading shared by the rule, with k counted from every window's stamps
    # (whatever namespace each worker ran in), and attributed again as overlapping windows were stored after it.
    assert attributed_cpu_j == pytest.approx(truth.rule_cpu_j, rel=1e-9)
    # The samples: the rule applied to what the host drew between the samples' stamps (a reading is taken a few ms
    # from its stamp, while CodeCarbon reads the other hardware: a few joules either way per window, 0.6% at most in
    # the sum in the drains measured).
    assert attributed_cpu_j == pytest.approx(truth.rule_drawn_cpu_j, rel=0.02)
    # The whole: every joule the host drew counted once, up to the rule's resolution (see above: 5% at most here).
    resolution = f"the rule on what the host drew: {truth.rule_drawn_cpu_j:.1f} J"
    assert attributed_cpu_j == pytest.approx(truth.drawn_cpu_j, rel=0.1), resolution
    # RAM: CodeCarbon's model, constant power for a host, where the rule is exact (but for the few ms each reading
    # is taken from its stamp).
    attributed_ram_j = sum(w.ram_energy_attributed_kwh for w in windows) * J_PER_KWH
    assert attributed_ram_j == pytest.approx(truth.rule_ram_j, rel=1e-9)
    assert attributed_ram_j == pytest.approx(truth.ram_w * truth.open_s, rel=0.02)
    return truth
