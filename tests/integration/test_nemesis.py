"""Issue 17: the fault suite's short run (the full matrix is `cluster/nemesis.py --matrix`, its
table in docs/benchmarks.md). Five real nodes in network namespaces, 150 ms apart one way with 5 %
loss (netem, or the delay relay where the kernel has no netem), clients sending through every
node against a strict budget while a node is SIGKILLed and restarted, one is stopped past its
suspicion, one is cut off, one can send but not be heard, and one's wall clock steps 5 s: the
nodes count exactly what the provider served, never more than the budget, and agree after."""
import os
import sys
from types import SimpleNamespace

import pytest

from conftest import BIN, netns_available

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "cluster"))


@pytest.mark.skipif(not netns_available(), reason="needs root and network namespaces")
def test_a_strict_budget_survives_kills_stops_cuts_and_clock_steps_with_nothing_lost():
    from nemesis import run
    args = SimpleNamespace(nodes=5, budget_requests=300, rate=20, latency="150", loss=5.0, seed=3)
    row = run(args, "strict", ["kill", "stop", "isolate", "oneway", "clock"], binary=BIN)
    assert not row["failures"], row
    assert row["overshoot_requests"] == 0 and row["served_requests"] <= 300
    assert row["counted_requests"] == row["served_requests"], row
    assert not any("skipped" in f for f in row["faults"]), row["faults"]
    assert row["links"].startswith("150 ms one way, 5 % loss"), row["links"]
