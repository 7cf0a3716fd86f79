"""The worker class under Faust's own test tools: its `route` agent runs in
`agent.test_context()` on an in-memory channel, and its outputs go to Faust in-memory
channels instead of Kafka topics. The same worker on a real Kafka:
tests/integration/test_acd_end_to_end.py, test_worker_failover.py, test_rebuild_from_log.py."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import pytest

from routing.contract import Envelope, decode, encode, topics
from routing.contract.edge import SYSTEM_TENANT
from streams.app import OUTPUT_TOPICS, Worker
from streams.router import handle
from streams.settings import load
from streams.store import RouterStore

from test_router import NODE, cmd, config, fs, leg

pytestmark = pytest.mark.streams

RAW = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                   value_serializer="raw")


def _setup_records() -> list[Envelope]:
    """Tenant acme: a queue, one agent logged in with its phone registered."""
    return [config("tenant", "acme", {"domain": "acme.vn"}),
            config("queue", "support", {"strategy": "longest-idle-agent",
                                        "offer_timeout_s": 15, "wrapup_s": 10}),
            config("agent", "a1", {"extension": "1000", "queues": {"support": {}}}),
            cmd("agent_login_requested", 1, agent_id="a1"),
            fs("sip_registered", 1, None, fs_event="sofia::register", extension="1000",
               domain="acme.vn")]


def _park(call_id: str, at_s: float) -> Envelope:
    return fs("channel_parked", at_s, call_id, **leg(call_id, call_id, queue="support",
                                                      caller="+84903123456"))


async def _next(channel: faust.ChannelT, want: Callable[[Envelope], bool],
                timeout_s: float = 5.0) -> tuple[bytes, Envelope]:
    """The next record on `channel` that `want` accepts (others are skipped), within a bound."""
    async def find() -> tuple[bytes, Envelope]:
        while True:
            event = await channel.get()
            env = decode(event.value)
            if want(env):
                return event.key, env
    return await asyncio.wait_for(find(), timeout_s)


class _Outputs(dict):
    """A reader of each output channel, subscribed before anything is sent (a Faust
    channel hands a record only to the readers it has)."""


def _run(test: Callable[[Worker, Any, _Outputs], Awaitable[None]]) -> None:
    """Run `test(worker, agent, out)` with the worker's agent in Faust's test context."""
    async def main() -> None:
        worker = Worker(load({"TONGDAI_APP_ID": "tongdai-test-worker"}))
        worker.outputs = {name: worker.app.channel() for name in OUTPUT_TOPICS}
        out = _Outputs({name: ch.__aiter__() for name, ch in worker.outputs.items()})
        async with worker.route_agent.test_context(channel=worker.app.channel(schema=RAW)) \
                as agent:
            await test(worker, agent, out)
    asyncio.run(main())


def test_records_reach_the_tenant_router_and_its_outputs_their_topics():
    async def test(worker: Worker, agent: Any, out: _Outputs) -> None:
        for env in _setup_records():
            await agent.put(key=topics.tenant_key("acme"), value=encode(env))
        await agent.put(key=topics.tenant_key("acme"), value=encode(_park("c1", 10)))
        key, offer = await _next(out[topics.ROUTING_DECISIONS],
                                 lambda e: e.type == "offer_call")
        assert key == NODE.encode() and offer.call_id == "c1"
        assert offer.payload["extension"] == "1000"
        _, enqueued = await _next(out[topics.CC_EVENTS],
                                  lambda e: e.type == "call_enqueued")
        assert enqueued.call_id == "c1" and enqueued.payload["queue"] == "support"
        # Handled, not yet saved: the records since the last save are kept to rebuild it.
        assert [e.type for e in worker.unsaved["acme"][1]][-1] == "channel_parked"
        assert worker.stats["records"] == 6 and worker.stats["dead"] == 0
        assert worker.cache["acme"].state.calls["c1"].status == "ringing"
    _run(test)


def test_bad_records_are_dead_lettered_and_leave_the_router_as_it_was():
    async def test(worker: Worker, agent: Any, out: _Outputs) -> None:
        for env in _setup_records():
            await agent.put(key=topics.tenant_key("acme"), value=encode(env))
        await agent.put(key=b"acme", value=b"{not json")
        _, dead = await _next(out[topics.DEAD_LETTERS], lambda e: True)
        assert dead.type == "dead_lettered" and "DecodeError" in dead.payload["reason"]

        before = worker.cache["acme"]
        bad = config("queue", "support", {"strategy": "no-such"})
        await agent.put(key=topics.tenant_key("acme"), value=encode(bad))
        _, dead = await _next(out[topics.DEAD_LETTERS], lambda e: True)
        assert "ConfigError" in dead.payload["reason"] and bad.event_id in dead.payload["reason"]
        # Rebuilt from the records handled since the last save, without the bad one.
        after = worker.cache["acme"]
        assert after is not before and after.state == before.state
        assert bad.event_id not in [e.event_id for e in worker.unsaved["acme"][1]]

        # A node-level fact is nobody's routing input; the worker goes on routing.
        node_fact = Envelope("sys-1", "heartbeat_received", 1, 1, SYSTEM_TENANT, NODE, 1, None,
                             {"hostname": "fs1", "sessions_active": 0, "uptime_ms": 1})
        await agent.put(key=b"", value=encode(node_fact))
        await agent.put(key=topics.tenant_key("acme"), value=encode(_park("c2", 20)))
        _, offer = await _next(out[topics.ROUTING_DECISIONS],
                               lambda e: e.type == "offer_call")
        assert offer.call_id == "c2" and set(worker.cache) == {"acme"}
        assert worker.stats["dead"] == 2
    _run(test)


def test_the_commit_hook_saves_what_a_restarted_worker_loads():
    async def test(worker: Worker, agent: Any, out: _Outputs) -> None:
        saved: dict[str, bytes] = {}
        worker.store = RouterStore(saved)  # the changelog table needs a running producer
        for env in [*_setup_records(), _park("c1", 10)]:
            await agent.put(key=topics.tenant_key("acme"), value=encode(env))
        await _next(out[topics.ROUTING_DECISIONS], lambda e: e.type == "offer_call")
        await worker.app.tongdai_before_commit()
        assert worker.unsaved == {} and saved
        restored = RouterStore(saved).load("acme")
        live = worker.cache["acme"]
        assert restored.state.calls == live.state.calls and restored.version == live.version
        # What the restored router does next is what the live one does.
        tick = cmd("tick", 40)
        assert ([o.envelope for o in handle(restored, tick)]
                == [o.envelope for o in handle(live, tick)])
    _run(test)


def test_ticks_live_views_and_snapshot_requests_follow_the_owned_tenants():
    async def test(worker: Worker, agent: Any, out: _Outputs) -> None:
        for env in [*_setup_records(), _park("c1", 10)]:
            await agent.put(key=topics.tenant_key("acme"), value=encode(env))
        await _next(out[topics.ROUTING_DECISIONS], lambda e: e.type == "offer_call")
        await worker.tick()
        key, tick = await _next(out[topics.CC_COMMANDS], lambda e: True)
        assert tick.type == "tick" and key == topics.tenant_key("acme")
        _, live = await _next(out[topics.LIVE], lambda e: True)
        assert live.type == "live_state_published" and live.tenant == "acme"
        key, snap = await _next(out[topics.ROUTING_DECISIONS],
                                lambda e: e.type == "request_snapshot")
        assert key == NODE.encode() and snap.payload["node"] == NODE
        # Once per start: a second tick asks no snapshot again; a revoke re-arms it.
        await worker.tick()
        await _next(out[topics.CC_COMMANDS], lambda e: e.type == "tick")
        assert out[topics.ROUTING_DECISIONS].empty()
        assert worker.snapshots_requested
    _run(test)
