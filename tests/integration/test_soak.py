"""A short soak of the whole ACD (issue 12): its invariants over ~70 s at 2 calls/s, no chaos.

`tongdai bench soak` (deploy/benchmarks/soak.py) on a private Kafka and ClickHouse: the ESL
simulator, the real bridge, worker and sink, 40 agents in two queues, callers who abandon
while waiting and while a phone rings, phones that do not answer, reject or are busy,
agent-first hang-ups. Judged from the switch's truth and the call log only. Shorter
thresholds than the bench's defaults keep the test under 3 minutes: a leg alone for 30 s
is stranded (no healthy leg is alone for more than a second), call-log rows must be single
and final 30 s after the hang-up (the sink flushes every second).
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.soak, pytest.mark.streams, pytest.mark.stack]

MUST_BE_ZERO = ("stranded_agent_legs_count", "callers_waiting_past_max_wait_count",
                "callers_never_offered_count", "callers_cut_off_count",
                "calls_cut_while_talking_count",
                "call_log_missing_rows", "call_log_duplicated_rows", "call_log_not_final_rows",
                "call_log_wrong_disposition_rows")


def test_short_soak_keeps_the_acd_invariants():
    from deploy.benchmarks import soak

    figures = soak.run(quick=True, argv=[
        "--seconds", "70", "--cps", "2", "--max-wait-s", "20", "--stranded-after-s", "30",
        "--final-within-s", "30", "--drain-s", "35", "--seed", "12"])
    assert figures["calls_placed_calls"] >= 100, figures
    broken = {k: figures[k] for k in MUST_BE_ZERO if figures[k]}
    assert not broken, (f"ACD invariants broken: {broken} (examples with ids are in the "
                        f"log above and the run's report.json); all figures: {figures}")
