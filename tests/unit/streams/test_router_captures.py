"""The router on real FreeSWITCH traffic (tests/fixtures/esl): a caller who left just
before the agent's phone answered (FreeSWITCH parks the late answer all the same) leaves
no agent leg behind."""
from __future__ import annotations

from pathlib import Path

import pytest

from esl_bridge import normalize, protocol
from esl_bridge.legs import LegBook
from routing.contract import Envelope, topics
from streams.router import TenantRouter, handle

pytestmark = pytest.mark.streams

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "esl"


def facts(name: str) -> list:
    frames = protocol.FrameParser().feed((CAPTURES / f"{name}.txt").read_bytes())
    out = []
    for frame in frames:
        if frame.content_type != protocol.EVENT_PLAIN:
            continue
        try:
            out.append(normalize.normalize(protocol.parse_event(frame)))
        except normalize.Skipped:
            continue
    return out


def test_a_late_answer_after_the_caller_left_is_hung_up_on_its_node():
    envs = facts("plain_caller_leaves_2450ms")
    caller_park = next(e for e in envs if e.type == "channel_parked" and e.payload["queue"])
    agent_park = next(e for e in envs if e.type == "channel_parked" and e.payload["offer_id"])
    hangup = next(e for e in envs if e.type == "channel_hungup" and e.call_id == e.payload["leg_id"])
    assert hangup.occurred_at < agent_park.occurred_at, "the phone answered after its caller left"
    router = TenantRouter(caller_park.tenant)
    handle(router, Envelope("q", "config_changed", 1, caller_park.occurred_at - 1, router.tenant,
                            "api", None, None, {"kind": "queue", "entity_id": "sales",
                                                "data": {"strategy": "longest-idle-agent"}}))
    outs = []
    for env in envs:
        if env.tenant == router.tenant and topics.for_router(env.type, env.payload):
            outs += handle(router, env)
    kills = [o.envelope.payload for o in outs if o.envelope.type == "hangup_leg"]
    leg = agent_park.payload["leg_id"]
    assert [(k["leg_id"], k["node"]) for k in kills] == [(leg, agent_park.source)]


def test_the_callers_first_event_has_no_tenant_yet_and_the_book_learns_it():
    """On the real switch a caller's CHANNEL_CREATE comes before the dialplan sets
    tongdai_tenant: the leg book must not keep the default tenant it had at first."""
    envs = facts("plain_caller_leaves_2450ms")
    first = envs[0]
    assert first.type == "channel_created" and first.tenant == "default"
    book = LegBook()
    for env in envs:
        if env.type == "channel_parked":
            book.observe(env)
            break
        book.observe(env)
    assert book.info(first.payload["leg_id"])["tenant"] == env.tenant != "default"
