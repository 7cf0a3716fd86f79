"""Music on hold on the waiting paths of a tenant provisioned only through the API (issue 14:
callers waiting in a queue heard silence), on a real FreeSWITCH with SIPp phones.

Truth: the RTP packets the switch sends to the caller, counted by a socket of the test's
that the caller's SDP names, timed against the switch's own events (CHANNEL_PARK,
CHANNEL_BRIDGE, CHANNEL_HOLD/UNHOLD; Event-Date-Timestamp and the packets' arrival share
this machine's clock). The agents' SIPp phones send no audio: a caller bridged to one gets
silence (the switch fills the gap with silent packets), no sound unless something plays.
"""
from __future__ import annotations

import pytest

from tests.integration.harness import Publisher

from . import sipp
from .conftest import free_port
from .test_calls import call_row

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

SALES = {"strategy": "longest-idle-agent", "offer_timeout_s": 20, "wrapup_s": 1}
EVENTS = "event plain CHANNEL_PARK CHANNEL_BRIDGE CHANNEL_EXECUTE CHANNEL_HOLD CHANNEL_UNHOLD"


def _at(event: dict) -> float:
    return int(event["Event-Date-Timestamp"]) / 1e6


def _caller_events(events: list[dict]) -> tuple[str, dict[str, list[dict]]]:
    """The parked caller's uuid and its events by name (the agent legs never park when the
    switch connects, and when the router does they park without tongdai_did)."""
    parked = [e for e in events if e.get("Event-Name") == "CHANNEL_PARK"
              and e.get("variable_tongdai_did")]
    assert parked, "the caller never parked"
    uid = parked[0]["Unique-ID"]
    mine: dict[str, list[dict]] = {}
    for e in events:
        if uid in (e.get("Unique-ID"), e.get("Bridge-A-Unique-ID"), e.get("Bridge-B-Unique-ID"),
                   e.get("Other-Leg-Unique-ID")):
            mine.setdefault(e["Event-Name"], []).append(e)
    return uid, mine


def _playbacks(mine: dict[str, list[dict]], uid: str) -> list[tuple[float, str]]:
    return [(_at(e), e.get("Application-Data", "")) for e in mine.get("CHANNEL_EXECUTE", [])
            if e["Unique-ID"] == uid and e.get("Application") == "playback"]


def test_a_caller_waiting_in_a_queue_hears_music_until_an_agent_answers(product):
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command(EVENTS)
    phones = [product.agent_phone(a, ring_ms=5000) for a in product.agents.values()]
    try:
        caller = product.call(product.queue_did, hold_ms=9000, hears=rtp.port)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
    finally:
        for phone in phones:
            phone.stop()
        esl.close()
        rtp.close()
    uid, mine = _caller_events(esl.plain_events())
    park, bridge = _at(mine["CHANNEL_PARK"][0]), _at(mine["CHANNEL_BRIDGE"][0])
    assert bridge - park > 4.5, (park, bridge)  # the agent rang 5 s
    # the queue's music (the default: the tenant's queue names none), from about a second
    # after the park until the bridge; then nothing plays over the agent
    plays = _playbacks(mine, uid)
    assert plays and plays[0][1] == "local_stream://moh", plays
    assert park + 0.5 < plays[0][0] < park + 2.5, (park, plays)
    waited = bridge - plays[0][0]
    heard = rtp.between(plays[0][0], bridge)
    loud = rtp.between(plays[0][0], bridge, loud=True)
    print(f"parked {bridge - park:.2f} s, music from {plays[0][0] - park:.2f} s: "
          f"{heard} packets ({loud} with sound) in {waited:.2f} s")
    assert heard >= 0.8 * 50 * waited and loud >= 0.5 * heard, (heard, loud, waited)
    assert rtp.between(park, park + 0.5) == 0  # the park itself sends nothing
    assert rtp.between(bridge + 0.3, bridge + 60, loud=True) == 0, rtp.packets[-5:]


@pytest.mark.parametrize("connect", ["switch", "router"])
def test_an_agent_answering_within_the_first_second_gets_no_music_over_the_call(product,
                                                                               connect):
    """The music is scheduled a second after the park: an agent who answers before it
    starts (a phone that answers at once) must still get the caller, not the music."""
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command(EVENTS)
    config = Publisher(product.bootstrap, product.tenant)
    phones = [product.agent_phone(a, ring_ms=0) for a in product.agents.values()]
    try:
        config.config("queue", "sales", {**SALES, "connect": connect})
        config.flush()
        caller = product.call(product.queue_did, hold_ms=6000, hears=rtp.port)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
    finally:
        config.config("queue", "sales", SALES)
        config.flush()
        config.close()
        for phone in phones:
            phone.stop()
        esl.close()
        rtp.close()
    uid, mine = _caller_events(esl.plain_events())
    park, bridge = _at(mine["CHANNEL_PARK"][0]), _at(mine["CHANNEL_BRIDGE"][0])
    print(f"connected by the {connect} {bridge - park:.3f} s after the park; playbacks on "
          f"the caller: {[(round(at - park, 2), what) for at, what in _playbacks(mine, uid)]}")
    if bridge - park < 1.0:  # connected before the music was due: it never starts
        assert all(what != "local_stream://moh" for _, what in _playbacks(mine, uid))
    # Connected later (a loaded machine), the music had started: it stops at the bridge.
    assert rtp.between(bridge + 0.3, bridge + 60, loud=True) == 0, rtp.packets[-5:]


def test_a_caller_the_agent_puts_on_hold_hears_music_until_taken_back(product):
    rtp = sipp.RtpCounter(free_port())
    esl = product.switch.esl()
    esl.command(EVENTS)
    reader = product.reader()
    then = sipp.hold_then_resume(after_ms=1000, hold_ms=3000)
    phones = [product.agent_phone(a, ring_ms=500, then=then) for a in product.agents.values()]
    try:
        caller = product.call(product.queue_did, hold_ms=9000, hears=rtp.port)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=20,
                        what="call_answered")
        call_id = reader.of_type("call_answered")[0].call_id
    finally:
        for phone in phones:
            phone.stop()
        esl.close()
        rtp.close()
        reader.close()
    _, mine = _caller_events(esl.plain_events())
    hold, unhold = _at(mine["CHANNEL_HOLD"][0]), _at(mine["CHANNEL_UNHOLD"][0])
    bridge = _at(mine["CHANNEL_BRIDGE"][0])
    heard = rtp.between(hold + 0.3, unhold)
    loud = rtp.between(hold + 0.3, unhold, loud=True)
    print(f"held {unhold - hold:.2f} s: {heard} packets ({loud} with sound)")
    assert heard >= 0.8 * 50 * (unhold - hold - 0.3) and loud >= 0.5 * heard, (heard, loud)
    assert rtp.between(bridge + 0.3, hold, loud=True) == 0  # no sound before the hold ...
    assert rtp.between(unhold + 0.5, unhold + 60, loud=True) == 0  # ... nor once taken back
    row = call_row(product, call_id, need=("end_us", "answer_us"))
    assert row["disposition"] == "answered", row
