"""A phone's blind transfer (SIP REFER) in the simulator, against the real switch's captures
(tests/fixtures/esl/plain_refer_to_queue, plain_refer_to_extension: an agent's phone
bridged by fs-conf's tongdai_connect REFERs the caller to the tenant's queue number, or to
the desk phone 2003).

What is compared is what the product reads: from the first CHANNEL_BRIDGE on, the order of
the parks, bridges, unbridges, hangups and new legs, each leg named by the order it first
appeared in, with the bridge's A and B legs and a hangup's cause, SIP disposition and
endpoint disposition."""
from __future__ import annotations

from pathlib import Path

import pytest

from esl_bridge import protocol
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node

pytestmark = pytest.mark.bridge

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "esl"
SHOWN = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_BRIDGE",
         "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")
DOMAIN = "127.0.0.1"
DID = "02836000111"


def story(events: list[protocol.Event]) -> list[tuple]:
    roles: dict[str, str] = {}
    out: list[tuple] = []
    started = False
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


def captured(name: str) -> list[tuple]:
    frames = protocol.FrameParser().feed((CAPTURES / f"{name}.txt").read_bytes())
    return story([protocol.parse_event(f) for f in frames
                  if f.content_type == protocol.EVENT_PLAIN])


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
