"""Hypothesis profiles: `ci` (the default: few examples, derandomized, so CI is repeatable) and `fuzz`
(`make fuzz`: many random examples). HYPOTHESIS_PROFILE picks one."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_MACHINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_SLOW_MACHINE)
settings.register_profile("fuzz", max_examples=int(os.environ.get("WATTSWEEP_FUZZ_EXAMPLES", "1000")),
                          deadline=None, suppress_health_check=_SLOW_MACHINE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
