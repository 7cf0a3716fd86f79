"""The router on real FreeSWITCH traffic (tests/fixtures/esl): a caller who left just
before the agent's phone answered (FreeSWITCH parks the late answer all the same) leaves
no agent leg behind; an agent's phone that transfers its caller (REFER) frees the agent,
and a caller transferred to the queue's number is offered again."""
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


def _routed(name: str, agents: dict[str, str]) -> tuple[TenantRouter, list, list]:
    """The capture's facts through a router that knows the run's tenant: queue `sales`,
    `agents` (id -> extension, logged in, their phones registered on the capture's node)."""
    envs = facts(name)
    park = next(e for e in envs if e.type == "channel_parked" and e.payload["queue"])
    router = TenantRouter(park.tenant)
    at = park.occurred_at - 10_000_000

    def config(kind: str, entity_id: str, data: dict) -> Envelope:
        return Envelope(f"c-{kind}-{entity_id}", "config_changed", 1, at, router.tenant, "api",
                        None, None, {"kind": kind, "entity_id": entity_id, "data": data})

    handle(router, config("tenant", router.tenant, {"domain": park.payload["domain"]}))
    handle(router, config("queue", "sales", {"strategy": "longest-idle-agent",
                                              "offer_timeout_s": 20, "wrapup_s": 1}))
    for i, (agent_id, ext) in enumerate(agents.items()):
        handle(router, config("agent", agent_id, {"extension": ext, "queues": {"sales": {}}}))
        handle(router, Envelope(f"l-{agent_id}", "agent_login_requested", 1, at + i + 1,
                                router.tenant, "api", None, None, {"agent_id": agent_id}))
        handle(router, Envelope(f"r-{agent_id}", "sip_registered", 1, at + i + 1, router.tenant,
                                park.source, None, None,
                                {"fs_event": "sofia::register", "extension": ext,
                                 "domain": park.payload["domain"]}))
    outs = []
    for env in envs:
        if env.tenant == router.tenant and topics.for_router(env.type, env.payload):
            outs.append((env, handle(router, env)))
    return router, envs, outs


def test_an_agent_who_transfers_its_caller_to_an_extension_is_free_before_the_caller_ends():
    """plain_refer_to_extension: a1's phone REFERs the caller to the desk 2003. The router
    offers the call with the id the real run's router did (the capture's agent leg), frees
    a1 when the switch ends its leg marked BLIND_TRANSFER and ends the call with the caller,
    not before; it never hangs the caller up."""
    router, envs, outs = _routed("plain_refer_to_extension", {"a1": "2001"})
    agent_leg = next(e.payload["leg_id"] for e in envs if e.payload.get("offer_id"))
    offers = [o.envelope.payload["offer_id"] for _, out in outs for o in out
              if o.envelope.type == "offer_call"]
    assert offers == [agent_leg]
    freed = next(env.occurred_at for env, out in outs for o in out
                 if o.envelope.type == "agent_state_changed"
                 and o.envelope.payload["state"] == "wrap_up")
    ended = next(env for env, out in outs for o in out if o.envelope.type == "call_ended")
    caller_end = next(e.occurred_at for e in envs if e.type == "channel_hungup"
                      and e.payload["leg_id"] == e.call_id)
    assert freed < caller_end - 5_000_000  # the caller talked to the desk for 9 s more
    assert ended.occurred_at == caller_end
    assert not [o for _, out in outs for o in out if o.envelope.type == "hangup_leg"]


def test_a_caller_transferred_to_the_queue_number_is_offered_to_the_next_agent():
    """plain_refer_to_queue: a1's phone REFERs the caller to the tenant's sales number; the
    caller parks again before the switch reports a1's leg gone. The router offers it to a2
    with the offer id the real run's router did (the capture's second agent leg)."""
    router, envs, outs = _routed("plain_refer_to_queue", {"a1": "2001", "a2": "2002"})
    legs = list(dict.fromkeys(e.payload["leg_id"] for e in envs if e.payload.get("offer_id")))
    offers = [(o.envelope.payload["offer_id"], o.envelope.payload["extension"])
              for _, out in outs for o in out if o.envelope.type == "offer_call"]
    assert offers == [(legs[0], "2001"), (legs[1], "2002")], (offers, legs)
    kinds = [o.envelope.type for _, out in outs for o in out]
    assert kinds.count("call_enqueued") == 2 and kinds.count("call_answered") == 2
    assert kinds.count("call_ended") == 1 and "call_abandoned" not in kinds
