"""The ACD invariants on a real FreeSWITCH (issue 12): a caller who leaves while an agent's
phone rings, or just as it answers, leaves no agent leg behind on the switch, and the
agent is free again.

The product once built the ring's cancel with an empty node when the caller left first;
the actuator dropped it, the phone answered, parked, and the agent sat off-hook with no
caller for good (every later offer: USER_BUSY).
"""
from __future__ import annotations

import json
import time

import pytest

from tests.realfs.test_calls import live

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def channels(esl) -> list[dict]:
    text = esl.api("show channels as json")
    return json.loads(text).get("rows") or [] if text.strip().startswith("{") else []


@pytest.mark.parametrize("hold_ms", [1000, 2450, 2600])
def test_a_caller_leaving_around_the_agents_answer_strands_nobody(product, hold_ms):
    """The agents' phones answer after 2.5 s of ringing; the caller hangs up `hold_ms`
    after the switch answered it: while the phone rings, as it answers, just after."""
    reader = product.reader()
    phones = [product.agent_phone(a, ring_ms=2500, timeout_s=60)
              for a in product.agents.values()]
    esl = product.switch.esl()
    esl.command("event plain ALL")
    try:
        caller = product.call(product.queue_did, hold_ms=hold_ms)
        reader.wait_for(lambda es: any(e.type == "call_offered" for e in es), timeout=30,
                        what="the call offered")
        call_id = reader.of_type("call_offered")[0].call_id
        caller.wait(30)
        reader.wait_for(lambda es: any(e.type in ("call_abandoned", "call_ended")
                                       and e.call_id == call_id for e in es),
                        timeout=30, what="the caller gone")
        deadline = time.monotonic() + 20
        left = channels(esl)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = channels(esl)
        assert not left, f"legs left on the switch: {[(c['uuid'], c['name']) for c in left]}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = {a["agent_id"]: a["state"] for a in live(product)["agents"]}
            if all(s in ("available", "wrap_up") for s in states.values()):
                break
            time.sleep(0.5)
        assert all(s in ("available", "wrap_up") for s in states.values()), states
    finally:
        for phone in phones:
            phone.stop()
        esl.close()
        esl.keep(f"plain_caller_leaves_{hold_ms}ms_agent_rings_2500ms")  # a fixture, when asked
        reader.close()
    kills = [e.payload for e in reader.of_type("hangup_leg")]
    assert all(k["node"] for k in kills), kills
