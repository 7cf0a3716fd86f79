"""Announcements on the simulated switch: the router's commands, as the actuator writes
them, are accepted by the simulated FreeSWITCH and reach the waiting caller's leg."""
from __future__ import annotations

import pytest

from deploy.benchmarks._simrun import SimRun
from esl_bridge.simulator import CallerSpec

pytestmark = pytest.mark.streams
TENANT = "announce.test"


def test_a_waiting_caller_hears_position_and_wait_and_a_ringing_one_does_not():
    run = SimRun(TENANT)
    run.config("tenant", TENANT, {"domain": TENANT})
    run.config("queue", "support", {"wrapup_s": 5, "announce_every_s": 30})
    run.add_agent("a1", "1000", {"support": {}}, answer_delay=1.0)
    results: list[tuple[str, str]] = []
    run.after.append(lambda env: results.append((env.payload["command"], env.payload["result"]))
                     if env.type == "command_executed" else None)
    vars_ = {"tongdai_tenant": TENANT, "tongdai_queue": "support"}
    first = run.place_call(CallerSpec(number="0903000001", did="19001234", variables=vars_,
                                      talk=100))
    run.run_for(3)
    second = run.place_call(CallerSpec(number="0903000002", did="19001234", variables=vars_,
                                       talk=10))
    run.run_for(70)
    legs = run.ledger.legs
    assert legs[first].announcements == [], "answered at once: nothing to announce"
    said = legs[second].announcements
    assert len(said) == 3, said  # on entry (+2 s), +32 s, +62 s
    assert said[0].startswith("file_string://tongdai/ewt/vi/position.wav!tongdai/ewt/vi/n/1.wav")
    assert all(r == "+OK Message sent" for c, r in results if c == "play_announcement")
    assert sum(1 for c, _ in results if c == "play_announcement") == 3
    assert [r for c, r in results if c == "break_playback"] == ["+OK"] * 3
