"""The simulator against the real switch's captures of issue 14 (tests/fixtures/esl): a
phone's blind transfer (SIP REFER; plain_refer_to_queue, plain_refer_to_extension: an
agent's phone bridged by fs-conf's tongdai_connect REFERs the caller to the tenant's queue
number, or to the desk phone 2003) and a click-to-call (plain_click_to_call: the agent's
phone answers after 0.7 s, the carrier's customer after 0.8 s, the agent hangs up 5 s after
its answer).

What is compared is what the product reads: from the first CHANNEL_BRIDGE on, the order of
the parks, bridges, unbridges, hangups and new legs, each leg named by the order it first
appeared in, with the bridge's A and B legs and a hangup's cause, SIP disposition and
endpoint disposition."""
from __future__ import annotations

from pathlib import Path

import pytest

from esl_bridge import protocol
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node, NumberSpec

pytestmark = pytest.mark.bridge

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "esl"
SHOWN = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_BRIDGE",
         "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "RECORD_START")
DOMAIN = "127.0.0.1"
DID = "02836000111"


def story(events: list[protocol.Event], *, from_bridge: bool = True) -> list[tuple]:
    roles: dict[str, str] = {}
    out: list[tuple] = []
    started = not from_bridge
    for e in events:
        uid = e.get("Unique-ID") or ""
        if uid and uid not in roles:
            roles[uid] = f"L{len(roles)}"
        started = started or e.name == "CHANNEL_BRIDGE"
        if not started or e.name not in SHOWN:
            continue
        row: tuple = (roles.get(uid, "?"), e.name)
        if e.name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            row += (roles.get(e.get("Bridge-A-Unique-ID") or ""),
                    roles.get(e.get("Bridge-B-Unique-ID") or ""))
        if e.name == "CHANNEL_HANGUP":
            row += (e.get("Hangup-Cause"), e.get("variable_endpoint_disposition"))
        if e.name == "CHANNEL_HANGUP_COMPLETE":
            row += (e.get("Hangup-Cause"), e.get("variable_sip_hangup_disposition"),
                    e.get("variable_endpoint_disposition"))
        out.append(row)
    return out


def captured(name: str, *, from_bridge: bool = True) -> list[tuple]:
    frames = protocol.FrameParser().feed((CAPTURES / f"{name}.txt").read_bytes())
    return story([protocol.parse_event(f) for f in frames
                  if f.content_type == protocol.EVENT_PLAIN], from_bridge=from_bridge)


def story_all(events: list[protocol.Event]) -> list[tuple]:
    """The whole call's story, its recording's start included."""
    return story(events, from_bridge=False)


def captured_all(name: str) -> list[tuple]:
    return captured(name, from_bridge=False)


def connected(desk: bool = False) -> tuple[Node, list, str]:
    """A caller of tenant acme parked in sales, agent 2001 bridged by tongdai_connect."""
    node = Node(clock=ManualClock(), seed=1, heartbeat=None)
    events: list = []
    node.listeners.append(events.append)
    node.start()
    node.add_agent(AgentSpec(ext="2001", answer_delay=0.5))
    if desk:
        node.add_agent(AgentSpec(ext="2003", answer_delay=1.0))
    node.set_did(DID, {"tongdai_queue": "sales", "tongdai_did": "+842836000111"})
    node.advance(0)
    call = node.place_call(CallerSpec(
        number="0903123456", did=DID, answer_delay=0.01,
        variables={"tongdai_tenant": "acme", "tongdai_domain": DOMAIN, "tongdai_queue": "sales",
                   "force_transfer_context": "tongdai_acme"}))
    node.advance(0.1)
    node.originate(f"{{origination_uuid=leg-a,tongdai_offer_id=leg-a,tongdai_call_id={call},"
                   f"originate_timeout=20}}user/2001@{DOMAIN} connect XML tongdai_connect",
                   lambda _: None)
    node.advance(1)
    assert node.channels[call].bridged_to == "leg-a"
    return node, events, call


def test_a_refer_to_the_tenants_number_parks_the_caller_again_as_the_switch_did():
    node, events, call = connected()
    assert node.refer("leg-a", DID, caller_first=True)
    node.advance(1)
    node.hangup(call, disposition="recv_bye")
    node.advance(1)
    mine = story(events)
    real = captured("plain_refer_to_queue")
    # the capture goes on (another agent answers); up to the REFERring leg's end they agree
    assert mine[:5] == real[:5], (mine, real)
    assert mine[1] == ("L0", "CHANNEL_PARK")  # the caller parked before the agent's leg ended
    assert node.channels == {}


def test_a_refer_to_an_extension_rings_it_and_bridges_the_caller_as_the_switch_did():
    node, events, call = connected(desk=True)
    assert node.refer("leg-a", "2003", caller_first=False)
    node.advance(3)
    node.hangup(call, disposition="recv_bye")
    node.advance(1)
    mine = story(events)
    real = captured("plain_refer_to_extension")
    # the transfer, to the caller's bridge with the desk, in the switch's order; the end of
    # the call the same facts (the two legs' threads interleave them as they come)
    assert mine[:7] == real[:7], (mine, real)
    assert sorted(mine[7:]) == sorted(real[7:]), (mine, real)
    desk = next(e for e in events if e.name == "CHANNEL_CREATE"
                and e.get("Caller-Destination-Number") == "2003")
    assert desk.get("Caller-Caller-ID-Number") == "0903123456"  # the phone shows the caller


def test_a_leg_that_is_not_bridged_cannot_transfer():
    node, _, call = connected()
    assert not node.refer(call + "-nobody", DID)
    node.hangup("leg-a")
    node.advance(1)
    assert not node.refer(call, DID)

def test_a_click_to_call_tells_the_story_the_switch_told():
    node = Node(clock=ManualClock(), seed=1, heartbeat=None)
    events: list = []
    node.listeners.append(events.append)
    node.start()
    node.add_agent(AgentSpec(ext="2001", answer_delay=0.7))
    node.add_number(NumberSpec(number="0903000222", answer_delay=0.8, talk=4.2,
                               hangup_by="agent"))
    node.advance(0)
    node.originate(
        "{origination_uuid=c2c-1,tongdai_tenant=acme,tongdai_click_to_call=r1,"
        "tongdai_agent_id=a1,tongdai_direction=outbound,export_vars=tongdai_tenant,"
        "origination_caller_id_number=0903000222,origination_caller_id_name='Click-to-call',"
        "effective_caller_id_number=02836000111,tongdai_outbound_caller_id=02836000111,"
        "originate_timeout=30,ignore_early_media=true}user/2001@127.0.0.1 "
        "0903000222 XML tongdai_acme_outbound", lambda _: None)
    node.advance(10)
    mine, real = story_all(events), captured_all("plain_click_to_call")
    # the agent's leg, its recording, the customer's leg, the bridge: in the switch's order
    assert mine[:6] == real[:6], (mine, real)
    # the end: the same facts (the legs' threads interleave them as they come)
    assert sorted(mine[6:]) == sorted(real[6:]), (mine, real)
    customer = next(e for e in events if e.name == "CHANNEL_CREATE"
                    and e.get("Unique-ID") != "c2c-1")
    assert customer.get("Caller-Caller-ID-Number") == "02836000111"
