"""The tenant router (pure): contract records in, commands and domain facts out."""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from routing.contract import Envelope, topics
from routing.contract.schemas import RecordSchema
from streams.router import TenantRouter, handle

pytestmark = pytest.mark.streams

T0 = 1_795_300_000_000_000  # a Sunday? no matter: the queue below is always open
NODE = "node-core-uuid"
_seq = itertools.count(1)
_ids = itertools.count(1)


def fs(type_: str, at_s: float, call_id: str | None, **payload) -> Envelope:
    return Envelope(f"fs-{next(_ids)}", type_, 1, T0 + int(at_s * 1e6), "acme", NODE,
                    next(_seq), call_id, payload)


def cmd(type_: str, at_s: float, **payload) -> Envelope:
    return Envelope(f"cmd-{next(_ids)}", type_, 1, T0 + int(at_s * 1e6), "acme", "api", None,
                    None, payload)


def config(kind: str, entity_id: str, data: dict | None) -> Envelope:
    return cmd("config_changed", 0, kind=kind, entity_id=entity_id, data=data)


def leg(call_id: str, leg_id: str, leg: str = "a", **extra) -> dict:
    return {"fs_event": "X", "leg_id": leg_id, "leg": leg, "direction": "inbound", **extra}


def setup(agents=("a1", "a2"), **queue) -> TenantRouter:
    r = TenantRouter("acme")
    for env in [config("tenant", "acme", {"domain": "acme.vn"}),
                config("queue", "support", {"strategy": "longest-idle-agent",
                                            "offer_timeout_s": 15, "wrapup_s": 10, **queue})]:
        handle(r, env)
    for i, a in enumerate(agents):
        handle(r, config("agent", a, {"extension": str(1000 + i), "queues": {"support": {}},
                                      "skills": {"billing": 5}}))
        handle(r, cmd("agent_login_requested", 1 + i, agent_id=a))
        handle(r, fs("sip_registered", 1 + i, None, fs_event="sofia::register",
                     extension=str(1000 + i), domain="acme.vn"))
    return r


def types(outs) -> list[str]:
    return [o.envelope.type for o in outs]


def _connected(r: TenantRouter, at_s: float = 10) -> str:
    """Call c1 parked in support, answered by a1 and bridged; its offer id."""
    outs = handle(r, fs("channel_parked", at_s, "c1", **leg("c1", "c1", queue="support",
                                                             caller="+84903123456")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    handle(r, fs("channel_bridged", at_s + 3, "c1", **leg("c1", "c1", other_leg_id=oid)))
    assert r.state.agents["a1"].status == "on_call"
    return oid


def transferred_leg(oid: str) -> dict:
    """The agent leg's hangup after its phone's REFER, as FreeSWITCH reports it (the
    capture plain_refer_to_extension: NORMAL_CLEARING, endpoint_disposition BLIND_TRANSFER)."""
    return leg("c1", oid, "b", offer_id=oid, hangup_cause="NORMAL_CLEARING",
               headers={"variable_endpoint_disposition": "BLIND_TRANSFER"})


def test_an_agent_who_transfers_the_caller_to_an_extension_is_done_with_the_call():
    r = setup()
    oid = _connected(r)
    outs = handle(r, fs("channel_hungup", 30, "c1", **transferred_leg(oid)))
    assert r.state.agents["a1"].status == "wrap_up"  # not on_call until the caller hangs up
    assert r.state.calls["c1"].status == "transferred" and "hangup_leg" not in types(outs)
    handle(r, cmd("tick", 41))
    assert r.state.agents["a1"].status == "available"
    # the caller talks to the extension, then hangs up: the call ended, not abandoned
    handle(r, fs("channel_bridged", 31, "c1", **leg("c1", "c1", other_leg_id="desk-leg")))
    outs = handle(r, fs("channel_hungup", 60, "c1", **leg("c1", "c1",
                                                         hangup_cause="NORMAL_CLEARING")))
    assert types(outs).count("call_ended") == 1 and "call_abandoned" not in types(outs)
    assert "c1" not in r.state.calls and r.state.agents["a1"].status == "available"


def test_a_caller_transferred_to_a_queue_waits_again_and_the_next_agent_gets_it():
    r = setup()
    oid = _connected(r)
    handle(r, fs("channel_hungup", 30, "c1", **transferred_leg(oid)))
    outs = handle(r, fs("channel_parked", 30.02, "c1", **leg("c1", "c1", queue="support",
                                                              caller="+84903123456")))
    assert types(outs)[0] == "call_enqueued"
    offer = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    assert offer["extension"] == "1001"  # a2: a1 is in wrap-up
    second = offer["offer_id"]
    assert second != oid  # a new leg, a new command: the actuator runs each id once
    outs = handle(r, fs("channel_bridged", 33, "c1", **leg("c1", "c1", other_leg_id=second)))
    assert next(o for o in outs if o.envelope.type == "call_answered").envelope.payload[
        "agent_id"] == "a2"
    outs = handle(r, fs("channel_hungup", 50, "c1", **leg("c1", "c1",
                                                         hangup_cause="NORMAL_CLEARING")))
    ended = next(o for o in outs if o.envelope.type == "call_ended").envelope.payload
    assert ended["agent_id"] == "a2" and r.state.agents["a2"].status == "wrap_up"


def test_a_transferred_callers_park_may_come_before_the_agent_legs_hangup():
    """The switch reports each leg on its own: the caller, transferred to a queue number,
    may park again before the agent's leg is reported gone."""
    r = setup()
    oid = _connected(r)
    outs = handle(r, fs("channel_parked", 30.02, "c1", **leg("c1", "c1", queue="support",
                                                              caller="+84903123456")))
    assert "call_enqueued" in types(outs) and r.state.agents["a1"].status == "wrap_up"
    offer = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    assert offer["extension"] == "1001" and offer["offer_id"] != oid
    outs = handle(r, fs("channel_hungup", 30.05, "c1", **transferred_leg(oid)))
    assert r.state.calls["c1"].status == "ringing" and "offer_call" not in types(outs)
    assert r.state.agents["a2"].status == "offered"


def test_an_agent_leg_that_ends_without_a_transfer_still_ends_with_the_call():
    r = setup()
    oid = _connected(r)
    handle(r, fs("channel_hungup", 30, "c1", **leg("c1", oid, "b", offer_id=oid,
                                                    hangup_cause="NORMAL_CLEARING")))
    assert r.state.agents["a1"].status == "on_call" and r.state.calls["c1"].status == "connected"


def test_every_output_is_a_valid_contract_record():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support",
                                                           caller="+84903123456")))
    assert outs
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}, o.envelope.type


def test_a_full_inbound_call():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support",
                                                           caller="+84903123456")))
    assert types(outs)[0] == "call_enqueued"
    offer = next(o for o in outs if o.envelope.type == "offer_call")
    assert offer.topic == topics.ROUTING_DECISIONS and offer.key == NODE.encode()
    p = offer.envelope.payload
    assert p["extension"] == "1000" and p["domain"] == "acme.vn" and p["node"] == NODE
    assert p["command_id"] == p["offer_id"] and p["timeout_s"] == 15
    assert "agent_state_changed" in types(outs)
    made = next(o for o in outs if o.envelope.type == "decision_made").envelope.payload
    assert made["chosen"] == ["a1"] and "a1" in made["reason"] + str(made["candidates"])

    offer_id = p["offer_id"]
    outs = handle(r, fs("channel_parked", 13, "c1", **leg("c1", offer_id, "b", offer_id=offer_id)))
    assert "connect_call" in types(outs) and "call_answered" in types(outs)
    answered = next(o for o in outs if o.envelope.type == "call_answered").envelope.payload
    assert answered["wait_ms"] == 3000 and answered["ring_ms"] == 3000
    outs = handle(r, fs("channel_bridged", 13.02, "c1", **leg("c1", "c1", other_leg_id=offer_id)))
    assert "hangup_leg" not in types(outs), "a bridged agent leg is left talking"
    assert r.state.agents["a1"].status == "on_call"
    outs = handle(r, fs("channel_hungup", 70, "c1", **leg("c1", "c1", hangup_cause="NORMAL_CLEARING")))
    ended = next(o for o in outs if o.envelope.type == "call_ended").envelope.payload
    assert ended["agent_id"] == "a1" and ended["talk_ms"] == 56980
    assert r.state.agents["a1"].status == "wrap_up"
    handle(r, cmd("tick", 75))
    assert r.state.agents["a1"].status == "wrap_up"
    outs = handle(r, cmd("tick", 81))
    assert r.state.agents["a1"].status == "available"
    assert any(o.envelope.payload.get("state") == "available" for o in outs)


def test_ring_no_answer_moves_the_call_to_the_next_agent():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    first = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    # the switch rings out a second before the 15 s offer timeout and says so
    outs = handle(r, fs("command_executed", 24, "c1", command_id=first["offer_id"],
                        command="offer_call", ok=False, result="-ERR NO_ANSWER",
                        job_uuid="job-1"))
    again = [o.envelope.payload for o in outs if o.envelope.type == "offer_call"]
    assert again and again[0]["extension"] != first["extension"]
    assert r.state.agents["a1"].status == "ring_no_answer"


def test_no_word_past_the_ring_time_gives_the_offer_up_without_blame():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    first = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    outs = handle(r, cmd("tick", 27))  # the 15 s ring time and the 2 s grace are past
    assert [o.envelope.payload["leg_id"] for o in outs if o.envelope.type == "hangup_leg"] \
        == [first["offer_id"]]
    again = [o.envelope.payload for o in outs if o.envelope.type == "offer_call"]
    assert again and again[0]["extension"] != first["extension"]
    assert r.state.agents["a1"].status == "available"


def test_the_agent_phone_refusing_is_a_failed_offer():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer_id = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, fs("command_executed", 10.1, "c1", command_id=offer_id,
                        command="offer_call", ok=False, result="-ERR USER_BUSY",
                        job_uuid="job-1"))
    assert r.state.agents["a1"].penalty_cause == "busy"
    assert "offer_call" in types(outs)  # re-offered to a2 at once


@pytest.mark.parametrize("result", ["-ERR node not connected", "-ERR expired: decided 40 s ago",
                                    "-ERR ConnectionError: socket closed"])
def test_an_offer_that_never_reached_the_phone_costs_the_agent_nothing(result):
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer_id = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, fs("command_executed", 10.1, "c1", command_id=offer_id,
                        command="offer_call", ok=False, result=result, job_uuid=None))
    a1 = r.state.agents["a1"]
    assert a1.penalty_cause is None and a1.failures == {} and a1.status != "ring_no_answer"
    assert offer_id not in r.state.offers
    again = [o.envelope.payload for o in outs if o.envelope.type == "offer_call"]
    assert again and again[0]["offer_id"] != offer_id  # the caller is offered again


def test_abandon_while_ringing_cancels_the_offer_and_counts_short():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer_id = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, fs("channel_hungup", 12, "c1", **leg("c1", "c1", hangup_cause="ORIGINATOR_CANCEL")))
    cancel = next(o for o in outs if o.envelope.type == "hangup_leg").envelope.payload
    assert cancel["leg_id"] == offer_id
    assert cancel["node"] == NODE, "the agent's leg keeps its node after the caller left"
    ab = next(o for o in outs if o.envelope.type == "call_abandoned").envelope.payload
    assert ab == {"queue": "support", "wait_ms": 2000, "short": True}
    assert r.state.agents["a1"].status == "available"


def test_duplicates_are_dropped():
    r = setup()
    env = fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support"))
    assert handle(r, env)
    assert handle(r, env) == []
    pause = cmd("agent_pause_requested", 11, agent_id="a2", reason="lunch")
    assert handle(r, pause)
    assert handle(r, pause) == [] and r.duplicates == 2


def test_an_unregistered_extension_is_never_offered():
    r = setup(agents=("a1",))
    handle(r, fs("sip_unregistered", 5, None, fs_event="sofia::unregister", extension="1000",
                 domain="acme.vn"))
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    assert "offer_call" not in types(outs)
    assert r.state.agents["a1"].status == "offline"


def test_a_snapshot_without_the_call_ends_it_and_frees_the_agent():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer_id = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    snap = Envelope("snap-1", "node_snapshot_taken", 1, T0 + 30_000_000, "acme", NODE, None, None,
                    {"node": NODE, "reason": "reconnected", "channels": [],
                     "registrations": [{"reg_user": "1000"}, {"reg_user": "1001"}]})
    outs = handle(r, snap)
    assert "call_abandoned" in types(outs)
    assert not r.state.calls and offer_id not in r.state.offers
    assert r.state.agents["a1"].status != "offered"


def test_a_registration_seen_before_the_agent_config_still_counts():
    r = TenantRouter("acme")
    handle(r, fs("sip_registered", 0.5, None, fs_event="sofia::register", extension="1000",
                 domain="acme.vn"))
    handle(r, config("queue", "support", {}))
    handle(r, config("agent", "a1", {"extension": "1000", "queues": {"support": {}}}))
    handle(r, cmd("agent_login_requested", 1, agent_id="a1"))
    assert r.state.agents["a1"].status == "available"


def test_a_login_seen_before_the_agent_config_is_applied_when_it_arrives():
    r = TenantRouter("acme")
    handle(r, cmd("agent_login_requested", 0.2, agent_id="a1"))
    handle(r, fs("sip_registered", 0.5, None, fs_event="sofia::register", extension="1000",
                 domain="acme.vn"))
    handle(r, config("queue", "support", {}))
    handle(r, config("agent", "a1", {"extension": "1000", "queues": {"support": {}}}))
    assert r.state.agents["a1"].status == "available"


def test_the_live_view_shows_queues_agents_and_calls():
    from streams.router import live_view

    r = setup()
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support", caller="+84903123456")))
    handle(r, fs("channel_parked", 11, "c2", **leg("c2", "c2", queue="support", caller="+84903000000")))
    view = live_view(r, T0 + 20_000_000)
    env = Envelope("x", "live_state_published", 1, T0, "acme", "w", None, None, view)
    assert RecordSchema().validate(env.to_dict()) == {}
    q = view["queues"][0]
    assert (q["queue"], q["waiting"], q["ringing"], q["longest_wait_ms"]) == ("support", 2, 2, 10_000)
    assert (q["agents_logged_in"], q["agents_available"]) == (2, 0)
    offered = {a["agent_id"]: a for a in view["agents"]}
    assert offered["a1"]["state"] == "offered" and offered["a1"]["call_id"] == "c1"
    assert offered["a1"]["since_us"] == T0 + 10_000_000
    assert [c["call_id"] for c in view["calls"]] == ["c1", "c2"]
    assert view["recent"][0]["call_id"] == "c2" and view["recent"][0]["action"] == "offer_call"
    assert view["recent"][0]["reason"]


def test_the_store_writes_on_change_with_config_apart_and_rebuilds_the_router():
    from streams.store import RouterStore

    table: dict = {}
    store = RouterStore(table)
    r = setup()
    assert store.save(r) == 2  # config and router
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    assert store.save(r) == 1, "a call does not rewrite the configuration"
    assert store.save(r) == 0, "nothing changed, nothing written"
    handle(r, config("queue", "support", {"wrapup_s": 3}))
    assert store.save(r) == 2

    again = RouterStore(table).load("acme")
    assert again.state == dataclasses.replace(r.state, gone={})
    assert (again.last_seq, again.call_nodes, again.registrations, again.version) == \
        (r.last_seq, r.call_nodes, r.registrations, r.version)
    assert RouterStore(table).tenants() == {"acme"}
    assert RouterStore({}).load("nobody").state == TenantRouter("nobody").state


def test_a_router_stored_before_new_fields_loads_with_their_defaults():
    import orjson

    from streams.store import ROUTER_KEY, RouterStore

    # What an older version stored: a router without monitors, agents without other_legs.
    table: dict = {}
    RouterStore(table).save(setup(agents=("a1",)))
    doc = orjson.loads(table[f"acme|{ROUTER_KEY}"])

    def strip(node):
        if isinstance(node, dict):
            if node.get("c") == "TenantRouter":
                node["f"].pop("monitors")
            if node.get("c") == "AgentState":
                node["f"].pop("other_legs")
            for v in node.values():
                strip(v)
        elif isinstance(node, list):
            for v in node:
                strip(v)

    strip(doc)
    table[f"acme|{ROUTER_KEY}"] = orjson.dumps(doc)
    again = RouterStore(table).load("acme")
    assert again.monitors == {} and again.state.agents["a1"].other_legs == ()
    assert again.state.agents["a1"].status == "available"


def test_a_stored_pickle_is_refused_never_unpickled(tmp_path):
    """Anyone able to write the changelog could run code in a worker that unpickles it."""
    import os
    import pickle

    from streams.snapshot import SnapshotError
    from streams.store import ROUTER_KEY, RouterStore

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    table = {f"acme|{ROUTER_KEY}": pickle.dumps(Exploit())}
    with pytest.raises(SnapshotError, match="pickle"):
        RouterStore(table).load("acme")
    assert not marker.exists()


def test_a_snapshot_names_only_known_classes_and_versions():
    import orjson

    from streams import snapshot

    evil = orjson.dumps({"v": 1, "kind": "router", "data": {"c": "Popen", "f": {"args": "id"}}})
    with pytest.raises(snapshot.SnapshotError, match="unknown class 'Popen'"):
        snapshot.loads("router", evil)
    future = orjson.dumps({"v": snapshot.VERSION + 1, "kind": "router", "data": None})
    with pytest.raises(snapshot.SnapshotError, match="newer than this worker"):
        snapshot.loads("router", future)
    with pytest.raises(snapshot.SnapshotError, match="not a config snapshot"):
        snapshot.loads("config", snapshot.dumps("router", TenantRouter("acme")))


GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "snapshots"


def _golden_router() -> TenantRouter:
    """The router the golden snapshots were taken of: two agents, a call talking to a1,
    one waiting... (rebuilt by the same records each time: routing is deterministic)."""
    r = setup(agents=("a1", "a2"))
    handle(r, cmd("agent_pause_requested", 3, agent_id="a2", reason="lunch"))
    oid = _answered(r)
    handle(r, fs("channel_bridged", 12.1, "c1", **leg("c1", "c1", other_leg_id=oid)))
    handle(r, fs("channel_parked", 13, "c2", **leg("c2", "c2", queue="support",
                                                    caller="+84903000111")))
    return r


@pytest.mark.parametrize("kind", ["router", "config"])
def test_golden_snapshots_of_v1_still_load(kind):
    """Snapshots written by v1 stay readable: a change of their meaning adds a version and
    an upgrade (streams.snapshot.UPGRADES), never a silent reinterpretation."""
    from streams.store import RouterStore

    table = {f"acme|{k}": (GOLDEN / f"{k}.v1.json").read_bytes() for k in ("router", "config")}
    loaded = RouterStore(table).load("acme")
    expected = _golden_router()
    if kind == "config":
        assert loaded.state.agent_cfg == expected.state.agent_cfg
        assert loaded.state.queues == expected.state.queues
    else:
        assert loaded.state.agents == expected.state.agents
        assert loaded.state.calls == expected.state.calls
        assert (loaded.call_nodes, loaded.agent_legs, loaded.registrations) == \
            (expected.call_nodes, expected.agent_legs, expected.registrations)
        assert loaded.state.agents["a1"].status == "on_call"
        assert loaded.state.agents["a2"].status == "paused"


def test_out_of_order_seqs_are_not_mistaken_for_duplicates():
    r = setup()
    late = Envelope("late", "channel_parked", 1, T0 + 10_000_000, "acme", NODE, 5_000_000, "c9",
                    leg("c9", "c9", queue="support"))
    newer = Envelope("newer", "tick", 1, T0 + 10_000_000, "acme", NODE, 5_000_003, None, {})
    handle(r, newer)
    assert handle(r, late), "an event fired after a newer-numbered one still counts"
    assert handle(r, late) == [], "but only once"
    ancient = Envelope("old", "channel_parked", 1, T0, "acme", NODE, 5_000_003 - 20_000, "c8",
                       leg("c8", "c8", queue="support"))
    assert handle(r, ancient) == [] and "c8" not in r.state.calls


def _answered(r: TenantRouter) -> str:
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    handle(r, fs("channel_parked", 12, "c1", **leg("c1", oid, "b", offer_id=oid)))
    return oid


def test_a_caller_gone_before_the_bridge_releases_the_answered_agent_leg():
    r = setup()
    oid = _answered(r)
    outs = handle(r, fs("channel_hungup", 12.05, "c1", **leg("c1", "c1", hangup_cause="NORMAL_CLEARING")))
    kills = [o.envelope.payload for o in outs if o.envelope.type == "hangup_leg"]
    assert [k["leg_id"] for k in kills] == [oid]
    assert kills[0]["node"] == NODE
    assert oid not in r.state.offers and "call_abandoned" in types(outs)


def test_a_failed_bridge_releases_the_agent_and_requeues_the_caller():
    r = setup()
    oid = _answered(r)
    outs = handle(r, fs("command_executed", 12.1, "c1", command_id="x", command="connect_call",
                        ok=False, result="-ERR No such channel!"))
    assert [o.envelope.payload["leg_id"] for o in outs if o.envelope.type == "hangup_leg"] == [oid]
    again = [o.envelope.payload for o in outs if o.envelope.type == "offer_call"]
    assert again and again[0]["offer_id"] != oid, "the caller is offered again"


def test_an_agent_leg_gone_before_the_bridge_requeues_the_caller():
    r = setup()
    oid = _answered(r)
    outs = handle(r, fs("channel_hungup", 12.05, "c1", **leg("c1", oid, "b", offer_id=oid,
                                                              hangup_cause="NORMAL_CLEARING")))
    assert oid not in r.state.offers and r.state.calls["c1"].status != "connected"
    assert "hangup_leg" not in types(outs), "the leg is already gone"
    assert "offer_call" in types(outs)


def test_a_snapshot_of_another_node_does_not_unregister_agents():
    r = setup()
    other = Envelope("snap-other", "node_snapshot_taken", 1, T0 + 30_000_000, "acme", "node-2",
                     None, None, {"node": "node-2", "reason": "connected", "channels": [],
                                  "registrations": []})
    handle(r, other)
    assert r.state.agents["a1"].status == "available"
    restarted = Envelope("snap-restart", "node_snapshot_taken", 1, T0 + 31_000_000, "acme", NODE,
                         None, None, {"node": NODE, "reason": "node_restarted", "channels": [],
                                      "registrations": []})
    handle(r, restarted)
    assert r.state.agents["a1"].status == "offline", "its own node says it is gone"


def test_registrations_in_a_snapshot_count_for_agents_configured_later():
    r = TenantRouter("acme")
    handle(r, Envelope("snap-early", "node_snapshot_taken", 1, T0, "acme", NODE, None, None,
                       {"node": NODE, "reason": "connected", "channels": [],
                        "registrations": [{"reg_user": "1000", "realm": "acme.vn"}]}))
    handle(r, config("queue", "support", {}))
    handle(r, config("agent", "a1", {"extension": "1000", "queues": {"support": {}}}))
    handle(r, cmd("agent_login_requested", 1, agent_id="a1"))
    assert r.state.agents["a1"].status == "available"


# ---- presence from call activity, click-to-call, monitoring ---------------------------

def c2c(at_s: float, agent_id: str = "a1", number: str = "0912 345 678",
        caller_id: str | None = "02873001234", request_id: str = "r-1") -> Envelope:
    return cmd("click_to_call_requested", at_s, agent_id=agent_id, number=number,
               request_id=request_id, caller_id=caller_id)


def test_a_call_on_the_agents_own_phone_makes_it_busy_for_the_queues():
    r = setup(agents=("a1",))
    outs = handle(r, fs("channel_created", 5, "x1", **leg("x1", "x1", extension="1000",
                                                          direction="internal")))
    assert r.state.agents["a1"].status == "on_call"
    assert any(o.envelope.payload.get("state") == "on_call" for o in outs)
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    assert "offer_call" not in types(outs), "a busy phone is not offered a queue call"
    outs = handle(r, fs("channel_hungup", 20, "x1", **leg("x1", "x1", extension="1000")))
    assert r.state.agents["a1"].status == "offered" and "offer_call" in types(outs)


def test_click_to_call_rings_the_agent_then_the_customer_with_the_callers_number():
    r = setup(agents=("a1",))
    outs = handle(r, c2c(5))
    order = next(o for o in outs if o.envelope.type == "originate_call")
    assert order.topic == topics.ROUTING_DECISIONS and order.key == NODE.encode()
    p = order.envelope.payload
    assert p["extension"] == "1000" and p["domain"] == "acme.vn" and p["node"] == NODE
    assert p["destination"] == "0912345678" and p["context"] == "tongdai_acme_outbound"
    assert p["outbound_caller_id"] == "02873001234" and p["command_id"] == p["leg_id"]
    assert order.envelope.call_id == p["leg_id"]
    assert RecordSchema().validate(order.envelope.to_dict()) == {}
    # Busy at once: a queue call arriving before the phone's leg exists is not offered.
    assert r.state.agents["a1"].status == "on_call"
    assert "offer_call" not in types(handle(r, fs("channel_parked", 6, "c1", **leg(
        "c1", "c1", queue="support"))))
    # The phone's leg appears (same uuid) and ends: the agent is free and gets the call.
    handle(r, fs("channel_created", 6.5, p["leg_id"], **leg(p["leg_id"], p["leg_id"],
                                                            extension="1000")))
    assert r.state.agents["a1"].other_legs == (p["leg_id"],)
    outs = handle(r, fs("channel_hungup", 40, p["leg_id"], **leg(p["leg_id"], p["leg_id"],
                                                                  extension="1000")))
    assert "offer_call" in types(outs)


def test_a_click_to_call_the_phone_never_took_frees_the_agent():
    r = setup(agents=("a1",))
    leg_id = next(o for o in handle(r, c2c(5)) if o.envelope.type == "originate_call") \
        .envelope.payload["leg_id"]
    handle(r, fs("command_executed", 35, leg_id, command_id=leg_id, command="originate_call",
                 ok=False, result="-ERR NO_ANSWER", job_uuid="j-1"))
    assert r.state.agents["a1"].status == "available"


@pytest.mark.parametrize("case, expected", [
    ("unregistered", "not registered"), ("busy", "busy"), ("service_caller_id", "1800/1900"),
    ("no_caller_id", "caller id"), ("bad_number", "phone number"), ("unknown_agent", "no agent"),
])
def test_click_to_call_refusals_say_why(case, expected):
    r = setup(agents=("a1",))
    request = c2c(5)
    if case == "unregistered":
        handle(r, fs("sip_unregistered", 4, None, fs_event="sofia::unregister",
                     extension="1000", domain="acme.vn"))
    elif case == "busy":
        handle(r, fs("channel_created", 4, "x1", **leg("x1", "x1", extension="1000")))
    elif case == "service_caller_id":
        request = c2c(5, caller_id="19001234")
    elif case == "no_caller_id":
        request = c2c(5, caller_id=None)
    elif case == "bad_number":
        request = c2c(5, number="0612")
    elif case == "unknown_agent":
        request = c2c(5, agent_id="nobody")
    outs = handle(r, request)
    assert types(outs) == ["command_refused"]
    refused = outs[0].envelope.payload
    assert expected in refused["reason"] and refused["request_id"] == "r-1"
    assert RecordSchema().validate(outs[0].envelope.to_dict()) == {}


def answered_call(r: TenantRouter) -> str:
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer_id = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    handle(r, fs("channel_parked", 12, "c1", **leg("c1", offer_id, "b", offer_id=offer_id)))
    handle(r, fs("channel_bridged", 12.1, "c1", **leg("c1", "c1", other_leg_id=offer_id)))
    return offer_id


def test_a_supervisor_monitors_the_agents_leg_and_switches_modes():
    r = setup(agents=("a1",))
    agent_leg = answered_call(r)
    start = Envelope("m-1", "monitor_requested", 1, T0 + 20_000_000, "acme", "api", None, "c1",
                     {"monitor_id": "mon-1", "agent_id": "a1", "extension": "1099",
                      "mode": "listen", "requested_by": "sup"})
    outs = handle(r, start)
    assert types(outs) == ["monitor_call"]
    p = outs[0].envelope.payload
    assert (p["leg_id"], p["target_leg"], p["extension"], p["mode"], p["node"]) == \
        ("mon-1", agent_leg, "1099", "listen", NODE)
    assert RecordSchema().validate(outs[0].envelope.to_dict()) == {}
    outs = handle(r, cmd("monitor_mode_requested", 25, monitor_id="mon-1", mode="barge"))
    assert types(outs) == ["send_dtmf"] and outs[0].envelope.payload["digits"] == "3"
    assert outs[0].envelope.payload["leg_id"] == "mon-1"
    # The supervisor hangs up: the monitoring is over, a mode switch is refused.
    handle(r, fs("channel_hungup", 30, "mon-1", **leg("mon-1", "mon-1", extension="1099")))
    outs = handle(r, cmd("monitor_mode_requested", 31, monitor_id="mon-1", mode="whisper"))
    assert types(outs) == ["command_refused"]


def test_monitoring_an_agent_without_a_call_is_refused():
    r = setup(agents=("a1",))
    outs = handle(r, cmd("monitor_requested", 5, monitor_id="mon-2", agent_id="a1",
                         extension="1099", mode="listen"))
    assert types(outs) == ["command_refused"]
    assert "no call in progress" in outs[0].envelope.payload["reason"]


def test_a_snapshot_without_the_phones_leg_frees_the_agent():
    r = setup(agents=("a1",))
    handle(r, fs("channel_created", 5, "x1", **leg("x1", "x1", extension="1000")))
    handle(r, Envelope("snap-1", "node_snapshot_taken", 1, T0 + 60_000_000, "acme", NODE, None,
                       None, {"node": NODE, "reason": "reconnected", "channels": [],
                              "registrations": [{"reg_user": "1000"}]}))
    assert r.state.agents["a1"].status == "available"


# ---- the ACD invariants: no agent stranded, no caller lost ---------------------------

def snapshot(at_s: float, channels: list[dict], regs=("1000", "1001"), reason="periodic"):
    return Envelope(f"snap-{next(_ids)}", "node_snapshot_taken", 2, T0 + int(at_s * 1e6), "acme",
                    NODE, None, None, {"node": NODE, "reason": reason, "channels": channels,
                                       "registrations": [{"reg_user": x} for x in regs]})


def row(uuid: str, created_s: float, **tongdai) -> dict:
    return {"uuid": uuid, "created_epoch": str((T0 + int(created_s * 1e6)) // 1_000_000),
            "application": "park", "tongdai": {"tenant": "acme", **tongdai}}


def corrections(outs) -> list[tuple[str, str]]:
    return [(o.envelope.payload["what"], o.envelope.payload["action"]) for o in outs
            if o.envelope.type == "state_corrected"]


def test_an_agent_answering_after_the_caller_left_is_hung_up_on_its_node():
    """The stranded-agent bug: the caller hangs up while the phone rings, the phone answers
    anyway and parks. Its leg must be hung up on the node it is on (it was sent with an
    empty node, dropped by the actuator, and the agent sat off-hook for good)."""
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    handle(r, fs("channel_hungup", 12, "c1", **leg("c1", "c1", hangup_cause="NORMAL_CLEARING")))
    outs = handle(r, fs("channel_parked", 12.2, "c1", **leg("c1", oid, "b", offer_id=oid)))
    kill = [o.envelope.payload for o in outs if o.envelope.type == "hangup_leg"]
    assert [(k["leg_id"], k["node"]) for k in kill] == [(oid, NODE)]
    assert r.state.agents["a1"].status == "available"


def test_a_command_with_no_node_goes_to_the_dead_letters_with_its_reason():
    r = setup()
    outs = handle(r, cmd("monitor_mode_requested", 5, monitor_id="m1", mode="whisper"))
    assert "send_dtmf" not in types(outs)  # refused: nothing to send
    r.monitors["m1"] = ("", "c9")  # a monitoring whose node was never known
    outs = handle(r, cmd("monitor_mode_requested", 6, monitor_id="m1", mode="barge"))
    assert [o.topic for o in outs] == [topics.DEAD_LETTERS]
    dead = outs[0].envelope.payload
    assert dead["topic"] == topics.ROUTING_DECISIONS and "no node" in dead["reason"]
    assert '"send_dtmf"' in dead["raw"] and r.undeliverable == 1
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}


def test_a_caller_parked_in_a_gap_is_adopted_with_its_wait():
    """The bridge was down while the caller parked: the park event is lost, the snapshot
    shows the caller, the router adopts it with the time it parked."""
    r = setup()
    outs = handle(r, snapshot(30, [row("c7", 18, leg="a", call_id="c7", queue="support",
                                        caller="+84903123456", parked_us=T0 + 20_000_000)]))
    assert corrections(outs) == [("caller_unknown", "enqueued")]
    offer = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    assert offer["node"] == NODE
    assert r.state.calls["c7"].enqueued_us == T0 + 20_000_000
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}, o.envelope.type
    # the park event arriving late changes nothing
    assert "call_enqueued" not in types(handle(r, fs("channel_parked", 30.1, "c7", **leg(
        "c7", "c7", queue="support"))))


def test_a_caller_in_voicemail_is_not_adopted_into_its_old_queue():
    """After a worker restart the router no longer remembers the call it sent to voicemail;
    the switch's row says what the caller is doing now."""
    r = setup()
    in_voicemail = {**row("c8", 18, leg="a", call_id="c8", queue="support",
                          parked_us=T0 + 20_000_000), "application": "voicemail"}
    outs = handle(r, snapshot(60, [in_voicemail]))
    assert "c8" not in r.state.calls and not corrections(outs)


def test_a_finished_call_still_parked_is_not_adopted_again():
    r = setup()
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    handle(r, fs("channel_hungup", 11, "c1", **leg("c1", "c1")))
    outs = handle(r, snapshot(30, [row("c1", 9, leg="a", call_id="c1", queue="support",
                                        parked_us=T0 + 10_000_000)]))
    assert "c1" not in r.state.calls and not corrections(outs)


def test_an_agent_leg_whose_caller_is_gone_is_hung_up_and_said():
    r = setup()
    outs = handle(r, snapshot(60, [row("legx", 20, leg="b", call_id="gone-call", offer_id="legx",
                                        extension="1000")]))
    kill = [o.envelope.payload for o in outs if o.envelope.type == "hangup_leg"]
    assert [(k["leg_id"], k["node"]) for k in kill] == [("legx", NODE)]
    assert corrections(outs) == [("agent_leg_orphaned", "hung_up")]
    fact = next(o for o in outs if o.envelope.type == "state_corrected").envelope.payload
    assert fact["agent_id"] == "a1" and "caller is gone" in fact["detail"]


def test_a_talking_agent_leg_and_a_young_leg_are_left_alone():
    r = setup()
    oid = _answered(r)
    handle(r, fs("channel_bridged", 12.1, "c1", **leg("c1", "c1", other_leg_id=oid)))
    outs = handle(r, snapshot(60, [row("c1", 9, leg="a", call_id="c1", queue="support"),
                                   row(oid, 10, leg="b", call_id="c1", offer_id=oid,
                                       bridged=True),
                                   row("young", 59, leg="b", call_id="nobody",
                                       offer_id="young")]))
    assert "hangup_leg" not in types(outs) and not corrections(outs)
    assert r.state.agents["a1"].status == "on_call"


def test_an_unbridged_leg_the_router_no_longer_offers_is_hung_up():
    r = setup()
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    outs = handle(r, snapshot(60, [row("c1", 9, leg="a", call_id="c1", queue="support"),
                                   row("stale", 20, leg="b", call_id="c1", offer_id="stale",
                                       bridged=False)]))
    assert [o.envelope.payload["leg_id"] for o in outs if o.envelope.type == "hangup_leg"] \
        == ["stale"]


def test_an_offer_with_no_channel_is_ended_without_penalty():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, snapshot(20, [row("c1", 9, leg="a", call_id="c1", queue="support")]))
    assert ("offer_gone", "ended") in corrections(outs)
    assert oid not in r.state.offers
    assert r.state.agents["a1"].penalty_cause is None


def test_an_agent_on_a_call_the_router_no_longer_has_is_freed():
    import routing
    r = setup(agents=("a1",))
    a = r.state.agents["a1"]
    r.state = dataclasses.replace(r.state, agents={**r.state.agents, "a1": dataclasses.replace(
        a, calls=("lost-call",), offer_id="lost-offer")})
    assert r.state.agents["a1"].status == "offered"
    outs = handle(r, snapshot(60, []))
    assert sorted(corrections(outs)) == [("agent_busy_without_channel", "freed")] * 2
    assert r.state.agents["a1"].status == "available"
    assert routing.AgentReleased  # the fact is part of the domain's vocabulary


def test_a_call_with_no_channel_is_ended_and_said():
    r = setup()
    handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    outs = handle(r, snapshot(30, []))
    assert ("call_gone", "ended") in corrections(outs) and "call_abandoned" in types(outs)
    # the wallboard's ticker shows it beside the decisions, as the live view says
    from routing.contract.schemas import LiveStateV1
    from streams.router import live_view

    view = live_view(r, T0 + 31_000_000)
    fixes = [d for d in view["recent"] if d["action"] == "state_corrected"]
    assert [d["call_id"] for d in fixes if "call_gone" in d["reason"]] == ["c1"]
    assert LiveStateV1().validate(view) == {}


def test_an_offer_bridged_in_a_gap_is_taken_as_connected_never_timed_out():
    """The phone answered and the switch bridged the caller while the bridge was away: the
    snapshot's row says the offer's leg is bridged to its caller. The call is connected;
    the offer's ring time running out later must not hang up a talking agent."""
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, snapshot(13, [row("c1", 9, leg="a", call_id="c1", queue="support"),
                                   row(oid, 10, leg="b", call_id="c1", offer_id=oid,
                                       bridged=True, bridge_to="c1")]))
    assert corrections(outs) == [("offer_bridged_unseen", "connected")]
    assert "hangup_leg" not in types(outs) and "call_answered" in types(outs)
    assert r.state.calls["c1"].status == "connected"
    assert r.state.agents["a1"].status == "on_call"
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}, o.envelope.type
    later = handle(r, fs("tick", 60, None))
    assert "hangup_leg" not in types(later)
    # the lost bridge event arriving late changes nothing
    assert types(handle(r, fs("channel_bridged", 13.5, "c1", **leg(
        "c1", oid, "b", offer_id=oid, other_leg_id="c1")))) == []


def test_a_leg_bridged_elsewhere_or_not_bridged_is_not_taken_as_connected():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    outs = handle(r, snapshot(11, [row("c1", 9, leg="a", call_id="c1", queue="support"),
                                   row(oid, 10.5, leg="b", call_id="c1", offer_id=oid,
                                       bridged=True, bridge_to="someone-else")]))
    assert not corrections(outs) and r.state.calls["c1"].status != "connected"


def test_a_leg_that_vanished_unheard_ends_as_its_hangup_would_have():
    """The bridge was away when the caller hung up; back, it tells the leg vanished."""
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    oid = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload["offer_id"]
    # the ringing phone vanished: no penalty (why it ended is unknown), offered again
    outs = handle(r, fs("channel_vanished", 12, "c1", leg_id=oid, leg="b", offer_id=oid,
                        last_heard_us=T0 + 12_000_000, noticed_us=T0 + 15_000_000))
    assert oid not in r.state.offers and r.state.agents["a1"].penalty_cause is None
    outs = handle(r, fs("channel_vanished", 13, "c1", leg_id="c1", leg="a",
                        last_heard_us=T0 + 13_000_000, noticed_us=T0 + 15_000_000))
    assert "call_abandoned" in types(outs) and "c1" not in r.state.calls
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}, o.envelope.type


def test_an_answer_heard_after_the_ring_time_is_who_the_caller_talks_to():
    """A broker failing over held the switch's events back past the offer's ring time: the
    router gave the offer up and offered the next agent, but the first phone had answered
    and the switch bridged it. The late bridge wins: the call is connected to that agent
    (ring-no-answer undone), the other phone stops ringing."""
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    first = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    outs = handle(r, fs("tick", 30, None))
    second = next(o for o in outs if o.envelope.type == "offer_call").envelope.payload
    assert r.state.agents["a1"].status == "available"  # given up without word: no blame
    outs = handle(r, fs("channel_bridged", 30.5, "c1", **leg(
        "c1", "c1", offer_id=first["offer_id"], other_leg_id=first["offer_id"])))
    assert [o.envelope.payload["leg_id"] for o in outs if o.envelope.type == "hangup_leg"] \
        == [second["offer_id"]]
    answered = [o.envelope.payload for o in outs if o.envelope.type == "call_answered"]
    assert [(a["agent_id"], a["offer_id"]) for a in answered] == [("a1", first["offer_id"])]
    assert answered[0]["ring_ms"] == 20_500
    assert r.state.calls["c1"].status == "connected" and r.state.calls["c1"].agent_id == "a1"
    assert r.state.agents["a1"].status == "on_call"
    assert r.state.agents["a1"].penalty_until_us is None
    for o in outs:
        assert RecordSchema().validate(o.envelope.to_dict()) == {}, o.envelope.type
    outs = handle(r, fs("channel_hungup", 40, "c1", **leg("c1", "c1")))
    assert "call_ended" in types(outs)


# ---- the switch connects the first phone to answer (queue connect: switch) -----------

def test_an_offer_connected_by_the_switch_is_answered_and_talking_at_once():
    r = setup()
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offer = next(o for o in outs if o.envelope.type == "offer_call")
    assert offer.envelope.version == 2 and offer.envelope.payload["connect"] == "switch"
    oid = offer.envelope.payload["offer_id"]
    outs = handle(r, fs("channel_bridged", 12.5, "c1", **leg("c1", oid, "b", offer_id=oid,
                                                              other_leg_id="c1")))
    assert "connect_call" not in types(outs), "the switch bridged it already"
    answered = next(o for o in outs if o.envelope.type == "call_answered").envelope.payload
    assert (answered["agent_id"], answered["wait_ms"], answered["ring_ms"]) == ("a1", 2500, 2500)
    assert r.state.calls["c1"].status == "connected" and r.agent_legs["c1"] == oid
    assert r.state.agents["a1"].status == "on_call"
    outs = handle(r, fs("channel_hungup", 40, "c1", **leg("c1", "c1")))
    assert next(o for o in outs if o.envelope.type == "call_ended").envelope.payload[
        "talk_ms"] == 27500
    assert r.state.agents["a1"].status == "wrap_up"


def test_a_phone_that_lost_the_race_costs_its_agent_nothing():
    r = setup(strategy="ring-all")
    outs = handle(r, fs("channel_parked", 10, "c1", **leg("c1", "c1", queue="support")))
    offers = [o.envelope.payload["offer_id"] for o in outs if o.envelope.type == "offer_call"]
    assert len(offers) == 2
    first, second = offers
    handle(r, fs("channel_bridged", 12, "c1", **leg("c1", first, "b", offer_id=first,
                                                     other_leg_id="c1")))
    handle(r, fs("channel_hungup", 12.1, "c1", **leg("c1", second, "b", offer_id=second,
                                                      hangup_cause="LOSE_RACE")))
    agents = {a: r.state.agents[a] for a in ("a1", "a2")}
    assert sorted(a.status for a in agents.values()) == ["available", "on_call"]
    assert all(a.penalty_cause is None for a in agents.values())
