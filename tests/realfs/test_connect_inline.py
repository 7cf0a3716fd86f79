"""The actuator's inline connect (esl_bridge.actuator.CONNECT_INLINE) on a real FreeSWITCH,
held against the simulator: what the agent's leg says about itself while it runs the inline
applications (its dialplan, context and destination) and how it ends after a talk. The
simulator was written to the same from the switch's code (esl_bridge.simulator.originate
`_inline`); this is the switch's word on it."""
from __future__ import annotations

import pytest

from esl_bridge.actuator import CONNECT_INLINE, CONNECT_VARIABLES
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

SALES = {"strategy": "longest-idle-agent", "offer_timeout_s": 20, "wrapup_s": 1}
FIELDS = ("Caller-Dialplan", "Caller-Context", "Caller-Destination-Number")


def _real(product) -> tuple[dict[str, str], str, str]:
    """One call to the queue: the agent leg's fields at its intercept, the application
    data it ran, and its hangup cause."""
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_EXECUTE CHANNEL_HANGUP_COMPLETE")
    phones = [product.agent_phone(a, ring_ms=1000) for a in product.agents.values()]
    try:
        caller = product.call(product.queue_did, hold_ms=3000)
        assert caller.wait(60) == 0, caller.messages()[-3000:]
    finally:
        for phone in phones:
            phone.stop()
    events = esl.plain_events()
    esl.close()
    intercept = next(e for e in events if e.get("Event-Name") == "CHANNEL_EXECUTE"
                     and e.get("Application") == "intercept"
                     and e.get("variable_tongdai_offer_id"))
    leg = intercept["Unique-ID"]
    ended = next(e for e in events if e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                 and e.get("Unique-ID") == leg)
    ran = [e.get("Application") for e in events if e.get("Event-Name") == "CHANNEL_EXECUTE"
           and e.get("Unique-ID") == leg]
    return {f: intercept.get(f, "") for f in FIELDS}, ",".join(ran), ended["Hangup-Cause"]


def _simulated(ext: str) -> tuple[dict[str, str], str, str]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None, fidelity="full")
    events: list = []
    node.listeners.append(events.append)
    node.start()
    node.add_agent(AgentSpec(ext=ext, answer_delay=1.0))
    node.advance(0)
    call = node.place_call(CallerSpec(number="0903123456", did="19001234", answer_delay=0.1,
                                      variables={"tongdai_queue": "sales"}, talk=3.0))
    node.advance(0.5)
    node.originate(f"{{origination_uuid=leg-1,tongdai_offer_id=leg-1,tongdai_call_id={call},"
                   f"originate_timeout=19,{CONNECT_VARIABLES}}}user/{ext}@127.0.0.1 "
                   f"{CONNECT_INLINE}", lambda _: None)
    node.advance(10)
    intercept = next(e for e in events if e.name == "CHANNEL_EXECUTE"
                     and e.get("Application") == "intercept")
    ended = next(e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE"
                 and e.get("Unique-ID") == "leg-1")
    ran = [e.get("Application") for e in events if e.name == "CHANNEL_EXECUTE"
           and e.get("Unique-ID") == "leg-1"]
    return {f: intercept.get(f) or "" for f in FIELDS}, ",".join(ran), ended.get("Hangup-Cause")


def test_the_simulator_runs_the_inline_connect_as_the_switch_does(product):
    real, real_apps, real_cause = _real(product)
    ext = real["Caller-Destination-Number"]
    sim, sim_apps, sim_cause = _simulated(ext)
    print(f"switch: {real} {real_apps} {real_cause}; simulator: {sim} {sim_apps} {sim_cause}")
    assert real["Caller-Dialplan"] == "inline"
    assert real_cause == "NORMAL_CLEARING"  # the caller hung up after the talk
    assert (sim, sim_apps, sim_cause) == (real, real_apps, real_cause)
