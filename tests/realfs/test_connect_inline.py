"""The actuator's inline connect (esl_bridge.actuator.CONNECT_INLINE) on a real FreeSWITCH,
held against the simulator: what the agent's leg says about itself while it runs the inline
applications (its dialplan, context and destination) and how it ends after a talk. The
simulator was written to the same from the switch's code (esl_bridge.simulator.originate
`_inline`); this is the switch's word on it."""
from __future__ import annotations

import time

import pytest

from esl_bridge.actuator import CONNECT_INLINE, CONNECT_VARIABLES
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

SALES = {"strategy": "longest-idle-agent", "offer_timeout_s": 20, "wrapup_s": 1}
FIELDS = ("Caller-Dialplan", "Caller-Context", "Caller-Destination-Number")
#: longer than the connect's failsafe (the `sched_hangup` that bridging cancels)
TALK_S = 5.0


def _real(product) -> tuple[dict[str, str], str, str]:
    """One call to the queue, talking longer than the connect's failsafe hangup: the agent
    leg's fields as it runs the inline applications, the applications it ran, and its
    hangup cause."""
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_EXECUTE CHANNEL_HANGUP_COMPLETE")
    phones = [product.agent_phone(a, ring_ms=1000) for a in product.agents.values()]
    try:
        caller = product.call(product.queue_did, hold_ms=int(TALK_S * 1000))
        assert caller.wait(60) == 0, caller.messages()[-3000:]
        first = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_EXECUTE"
                               and e.get("variable_tongdai_offer_id"), 10)
        assert first is not None, "no agent leg ran the inline connect"
        leg = first["Unique-ID"]
        ended = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                               and e.get("Unique-ID") == leg, 10)
    finally:
        for phone in phones:
            phone.stop()
    events = esl.plain_events()
    esl.close()
    ran_so_far = [(e.get("Application"), e.get("Application-Data")) for e in events
                  if e.get("Unique-ID") == leg and e.get("Event-Name") == "CHANNEL_EXECUTE"]
    assert ended is not None, f"the agent's leg did not end after its caller: {ran_so_far}"
    ran = [e.get("Application") for e in events if e.get("Event-Name") == "CHANNEL_EXECUTE"
           and e.get("Unique-ID") == leg]
    talked = (int(ended["Event-Date-Timestamp"]) - int(ended["variable_answer_epoch"]) * 1e6) / 1e6
    assert talked > TALK_S - 1.5, f"the agent's leg ended {talked:.1f} s after its answer"
    return {f: first.get(f, "") for f in FIELDS}, ",".join(ran), ended["Hangup-Cause"]


def _simulated(ext: str) -> tuple[dict[str, str], str, str]:
    node = Node(clock=ManualClock(), seed=1, heartbeat=None, fidelity="full")
    events: list = []
    node.listeners.append(events.append)
    node.start()
    node.add_agent(AgentSpec(ext=ext, answer_delay=1.0))
    node.advance(0)
    call = node.place_call(CallerSpec(number="0903123456", did="19001234", answer_delay=0.1,
                                      variables={"tongdai_queue": "sales"}, talk=TALK_S))
    node.advance(0.5)
    node.originate(f"{{origination_uuid=leg-1,tongdai_offer_id=leg-1,tongdai_call_id={call},"
                   f"originate_timeout=19,{CONNECT_VARIABLES}}}user/{ext}@127.0.0.1 "
                   f"{CONNECT_INLINE}", lambda _: None)
    node.advance(10)
    first = next(e for e in events if e.name == "CHANNEL_EXECUTE"
                 and e.get("Unique-ID") == "leg-1")
    ended = next(e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE"
                 and e.get("Unique-ID") == "leg-1")
    ran = [e.get("Application") for e in events if e.name == "CHANNEL_EXECUTE"
           and e.get("Unique-ID") == "leg-1"]
    return {f: first.get(f) or "" for f in FIELDS}, ",".join(ran), ended.get("Hangup-Cause")


def test_the_simulator_runs_the_inline_connect_as_the_switch_does(product):
    real, real_apps, real_cause = _real(product)
    ext = real["Caller-Destination-Number"]
    sim, sim_apps, sim_cause = _simulated(ext)
    print(f"switch: {real} {real_apps} {real_cause}; simulator: {sim} {sim_apps} {sim_cause}")
    assert real["Caller-Dialplan"] == "inline"
    assert real_cause == "NORMAL_CLEARING"  # the caller hung up after the talk
    assert (sim, sim_apps, sim_cause) == (real, real_apps, real_cause)


def _hangup_of(esl, leg: str, timeout: float) -> dict[str, str] | None:
    return esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                          and e.get("Unique-ID") == leg, timeout)


def test_a_caller_gone_in_the_instant_of_the_bridge_does_not_strand_the_phones_leg(product):
    """The inline connect bridges with the caller as originator. If the caller hangs up
    after the uuid_bridge but before its thread takes the bridge up, nothing moves the
    phone's leg on: the switch leaves it answered, waiting (shown here first, with the
    failsafe taken out). The `sched_hangup` in CONNECT_INLINE ends it ORIGINATOR_CANCEL
    3 s later and frees the fence's key. The race is forced: the caller is killed in the
    same expansion, microseconds after the uuid_bridge."""
    desk = product.desk
    assert desk is not None
    kill = "${uuid_bridge(${tongdai_caller} ${uuid})}${uuid_kill(${tongdai_caller})}"
    forced = CONNECT_INLINE.replace("${uuid_bridge(${tongdai_caller} ${uuid})}", kill)
    assert forced != CONNECT_INLINE
    no_failsafe = forced.replace("sched_hangup:+3 ORIGINATOR_CANCEL,", "")
    esl = product.switch.esl()
    esl.command("event plain CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE")
    # the desk phone answers both legs of each round: the "caller" and the "agent"
    phone = product.agent_phone(desk, calls=4, ring_ms=300, timeout_s=60)
    target = f"user/{desk.ext}@{product.domain}"
    try:
        for round_, inline in (("no-failsafe", no_failsafe), ("failsafe", forced)):
            caller, leg = f"race-caller-{round_}", f"race-leg-{round_}"
            for _ in range(10):  # the phone's SIPp may still be starting (503 on a closed port)
                reply = esl.api(f"originate {{origination_uuid={caller}}}{target} "
                                f"&playback(local_stream://moh)")
                if reply.startswith("+OK"):
                    break
                time.sleep(0.5)
            assert reply.startswith("+OK"), reply
            esl.command(f"bgapi originate {{origination_uuid={leg},tongdai_call_id={caller},"
                        f"{CONNECT_VARIABLES}}}{target} {inline}")
            answered = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_ANSWER"
                                      and e.get("Unique-ID") == leg, 15)
            assert answered is not None, "the desk phone did not answer the phone's leg"
            assert _hangup_of(esl, caller, 10) is not None, "the forced caller kill"
            if round_ == "no-failsafe":
                assert _hangup_of(esl, leg, 6) is None, \
                    "the switch moved the originatee on by itself: the failsafe is not needed"
                assert esl.api(f"hash select/tongdai_connect/{caller}").strip() == leg
                esl.api(f"uuid_kill {leg}")
                assert _hangup_of(esl, leg, 10) is not None
                continue
            ended = _hangup_of(esl, leg, 10)
            assert ended is not None, "the failsafe did not end the phone's leg"
            waited = (int(ended["Event-Date-Timestamp"])
                      - int(answered["Event-Date-Timestamp"])) / 1e6
            assert ended["Hangup-Cause"] == "ORIGINATOR_CANCEL" and 2.5 < waited < 5, \
                (ended["Hangup-Cause"], waited)
            assert not any(e.get("Event-Name") == "CHANNEL_BRIDGE"
                           and leg in (e.get("Bridge-A-Unique-ID"), e.get("Bridge-B-Unique-ID"))
                           for e in esl.plain_events())
            # an API that writes nothing reads "-ERR no reply" on the event socket
            assert esl.api(f"hash select/tongdai_connect/{caller}").strip() in (
                "", "-ERR no reply"), "the fence's key was not freed"
    finally:
        phone.stop()
        esl.close()


def test_the_switch_holds_no_per_call_state_after_calls_and_the_check_sees_it(product):
    """What `tongdai bench acd --freeswitch` reads after each phase (fence keys, tasks
    grouped by a call's uuid) must be 0 once calls are over, and the check must see a key
    and a task when there is one."""
    from deploy.benchmarks._acd_realfs import leftovers_settled as settled

    _real(product)  # one call through the inline connect, talking past its failsafe
    esl = product.switch.esl()
    try:
        assert settled(esl, (0, 0)) == (0, 0)
        planted = "5f0c2a9e-0000-4000-8000-000000000001"
        esl.api(f"hash insert/tongdai_connect/{planted}/x")
        esl.api(f"sched_api +600 {planted} echo leftover")
        assert settled(esl, (1, 1)) == (1, 1)
        esl.api(f"hash delete/tongdai_connect/{planted}")
        esl.api(f"sched_del {planted}")
        assert settled(esl, (0, 0)) == (0, 0)
    finally:
        esl.close()

