"""The routing worker (`Worker`) and its Faust app: one partition owns a tenant; the
agent is a thin shell around `streams.router.handle`.

- `route` consumes the FreeSWITCH facts routing uses (`tongdai.fs.routing.v1`, a subset of
  the FS events the bridge writes for the router) and API commands (both keyed by tenant, 8 partitions,
  so a tenant's records meet in one partition of each and one worker owns them): decode,
  upcast, hand to the tenant's router, send what it returned. A changed router is stored
  in the `tenants` table (its changelog makes a restarted worker resume where it was)
  just before Faust commits the offsets of the records that changed it, so a committed
  offset never runs ahead of the saved state.
- `forward_config` re-keys the compacted config topic (keyed by entity) by tenant into the
  commands topic, so configuration reaches the owning partition in order with the rest.
- `tick` sends a tick per owned tenant every `tick_interval_s`: time enters as records in
  the log, and a replay makes the same decisions (deploy/docs/DESIGN.md, "Time").

Processing guarantee: at-least-once (Faust's default) with idempotent handling: the router
drops FreeSWITCH facts at or below the last seq of their node and other records by
event_id; outputs carry deterministic ids and the actuator executes a command id once.
Exactly-once would need transactions across three output topics and the changelog and
costs throughput on a 2-core box, while duplicates are already harmless.
Malformed records go to the dead-letter topic with the reason; the worker never crashes
on input.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust

from routing.contract import DecodeError, Envelope, UpcastError, decode, deterministic_id, encode, topics, upcast
from routing.contract.edge import SYSTEM_TENANT, dead_letter as dead_letter_record, fields, now_us

from .router import TenantRouter, handle, live_view
from .snapshot import SnapshotError
from .store import RouterStore
from .settings import WorkerSettings

log = logging.getLogger("tongdai.worker")
LIVE_REFRESH_S = 5  # a live view is republished at least this often while nothing changes
SAVE_EVERY = 500  # records of one tenant at most between two saves of its router


def _transport_class(fetch_wait_ms: int) -> type:
    """Faust's aiokafka transport with the worker consumer's fetch wait set.

    Faust builds its consumer with ``fetch_max_wait_ms=1500``, and aiokafka keeps one
    fetch in flight per broker: while it waits on partitions with nothing new, a
    partition whose records were just handled cannot be fetched again. On one broker
    that held a waiting call's park event for up to 1.5 s before routing saw it (the
    ACD benchmark's worker stage: p50 up to 1.5 s at 31-52 % CPU). A short wait bounds
    that; the price is an idle worker asking the broker ~1000/fetch_wait_ms times a second.
    """
    from faust.transport.drivers import aiokafka as driver

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            if not hasattr(consumer, "_fetch_max_wait_ms"):  # an aiokafka without it
                raise RuntimeError("aiokafka's consumer has no _fetch_max_wait_ms: "
                                   "check streams.app._transport_class against it")
            consumer._fetch_max_wait_ms = fetch_wait_ms  # read by its fetcher at start
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> ConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
            # The routers' deferred saves go to the changelog first: Faust then flushes
            # the producer and commits, so a committed offset never runs ahead of the
            # state saved for it.
            before = getattr(self.app, "tongdai_before_commit", None)
            if before is not None:
                await before()
            return await super()._commit_offsets(offsets, start_new_transaction)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


class _App(faust.App):
    """Faust's App with the worker's own Kafka transport (see _transport_class)."""

    tongdai_transport: type | None = None

    def _new_transport(self) -> Any:
        if self.tongdai_transport is None:
            return super()._new_transport()
        return self.tongdai_transport(self.conf.broker_consumer, self)


class _ChangelogTable(MutableMapping):
    """The Faust table as RouterStore sees it, writing to the changelog partition set in
    `partition` (the tenant's: records, table and changelog are co-partitioned by
    tenant). Faust's own __setitem__ takes the partition from the event being processed;
    the worker's deferred saves run outside any event (just before a commit)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.partition: int | None = None

    def __getitem__(self, key: str) -> bytes:
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __setitem__(self, key: str, value: bytes) -> None:
        if self.partition is None:
            raise RuntimeError("_ChangelogTable: no partition set for this write")
        self.table.data[key] = value
        self.table.send_changelog(self.partition, key, value)
        owners = getattr(self.table.data, "_key_partition", None)  # Faust's memory store
        if owners is not None:  # lets it drop the key when the partition moves away
            owners[key] = self.partition

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("routers are never deleted from the table")

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)


OUTPUT_TOPICS = (topics.CC_EVENTS, topics.ROUTING_DECISIONS, topics.CC_COMMANDS,
                 topics.DEAD_LETTERS, topics.LIVE)
"""The topics the worker writes to."""


def _new_app(settings: WorkerSettings) -> _App:
    app = _App(
        settings.app_id, broker=f"kafka://{settings.kafka_bootstrap}", store="memory://",
        datadir=settings.worker_data_dir, topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication, table_standby_replicas=0,
        web_enabled=False, producer_acks=-1, consumer_auto_offset_reset=settings.start_from,
        # A worker that died is noticed after the session timeout, and only then are its
        # partitions given to the one that replaces it: 6 s, the broker's minimum, keeps
        # a restart's routing pause under 10 s (heartbeats come from Faust's consumer
        # thread, so a busy event loop does not miss them).
        broker_session_timeout=6, broker_heartbeat_interval=1,
        stream_wait_empty=False, table_cleanup_interval=3600.0,
        # Small, frequent commits: each commit waits for the producer to flush, and a
        # large flush stalls the stream (latency spikes at every commit otherwise). A
        # decision leaves at once (no linger): under load the producer batches what came
        # while its last request was out anyway, and each ms of linger is a ms of every
        # caller's wait for an agent's phone to ring (produce -> consumed on this broker,
        # p50: 4.3 ms with 1 ms of linger, 2.7 ms with none; on a real switch at 10 calls/s
        # the decision's hop to the bridge went 4.8 -> 3.7 ms p50, within the offer's
        # run-to-run spread: 25-34 ms p50 over three runs).
        broker_commit_interval=0.5, producer_linger_ms=0)
    app.tongdai_transport = _transport_class(settings.fetch_wait_ms)  # before first use
    return app


class Worker:
    """A routing worker: its Faust app, the routers of the tenants it owns, their saves.

    `route` (the agent), `forward_config` (a task) and the timers `live_changes`, `tick`
    and `report` are registered on `app` when the worker is built. `outputs` maps each of
    OUTPUT_TOPICS to the channel it is sent on: its Kafka topic (a test may put Faust
    in-memory channels in their place)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.app = app = _new_app(settings)
        self.source = app.topic(topics.FS_ROUTING, topics.CC_COMMANDS, key_type=bytes,
                                value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.outputs: dict[str, faust.ChannelT] = {
            name: app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw") for name in OUTPUT_TOPICS}
        self.table = app.Table("tenants", default=None, partitions=settings.topic_partitions,
                               key_type=str, value_type=bytes)
        self.cache: dict[str, TenantRouter] = {}  # live routers of the tenants we own
        self.writer = _ChangelogTable(self.table)
        self.store = RouterStore(self.writer)
        # Routers changed since their last save: tenant -> (its partition, the records
        # since). A router is serialized whole, so it is saved when its offsets are about
        # to be committed (and every SAVE_EVERY records), not after each record:
        # serializing was ~45 % of the worker's CPU at 30 calls/s. The records since the
        # last save rebuild a router that a bad record left half-applied.
        self.unsaved: dict[str, tuple[int, list[Envelope]]] = {}
        self.stats = {"records": 0, "dead": 0, "sent": 0, "undeliverable": 0, "corrections": 0}
        self.lags: list[float] = []  # ms from a record's Kafka timestamp to its handling
        self.live_marks: dict[str, tuple[int, int]] = {}  # tenant -> (router version, µs)
        self.snapshots_requested = False
        self.gc_frozen = False
        # Set between records. A router saved while a record is half done (applied, its
        # outputs not all handed to the producer yet) would, after a crash, make the
        # record's redelivery a duplicate and its remaining outputs would never be sent:
        # saves wait for the record in hand to be finished.
        self.between_records = asyncio.Event()
        self.between_records.set()

        app.tongdai_before_commit = self.save_between_records  # type: ignore[attr-defined]
        app.tongdai_worker = self  # type: ignore[attr-defined]
        self.route_agent = app.agent(self.source, name="route")(self.route)
        app.task(self.forward_config)
        app.timer(settings.live_interval_s)(self.live_changes)
        app.timer(settings.tick_interval_s)(self.tick)
        app.timer(10.0)(self.report)
        app.on_partitions_revoked.connect(self.on_revoked)

    # ---- routers and their saves --------------------------------------------------------

    def router_of(self, tenant: str) -> TenantRouter:
        router = self.cache.get(tenant)
        if router is None:
            try:
                router = self.store.load(tenant)
            except SnapshotError as exc:
                # Never guess at state we cannot read: fold the tenant's log again (what
                # routing is a pure function of); its outputs were sent long ago.
                log.warning("stored router unreadable (%s); rebuilding it from the log", exc,
                            extra={"tenant": tenant})
                router = rebuild_from_log(self.settings.kafka_bootstrap,
                                          self.settings.topic_partitions, tenant)
                self.unsaved.setdefault(
                    tenant, (_partition_of(tenant, self.settings.topic_partitions), []))
            self.cache[tenant] = router
        return router

    def save(self, tenant: str) -> None:
        entry = self.unsaved.pop(tenant, None)
        router = self.cache.get(tenant)
        if entry is None or router is None:
            return
        self.writer.partition = entry[0]
        self.store.save(router)

    def save_all(self) -> None:
        for tenant in list(self.unsaved):
            self.save(tenant)

    async def save_between_records(self) -> None:
        """Save the changed routers once the record in hand is finished (before a commit)."""
        try:
            await asyncio.wait_for(self.between_records.wait(), timeout=30)
        except asyncio.TimeoutError:  # a send stuck that long: save anyway, and say so
            log.warning("saving routers while a record is still being sent")
        self.save_all()

    def rebuild(self, tenant: str) -> None:
        """The tenant's router as last saved plus the records handled since (what they
        sent is not sent again): a record that failed half-way leaves no trace."""
        entry = self.unsaved.pop(tenant, None)
        self.cache.pop(tenant, None)
        self.store.forget(tenant)
        router = self.router_of(tenant)
        if not entry:
            return
        try:
            for earlier in entry[1]:
                handle(router, earlier)
        except Exception:  # they applied before; handling is deterministic
            log.exception("rebuilding from %d records failed; it continues from its last "
                          "saved state", len(entry[1]), extra={"tenant": tenant})
            self.cache.pop(tenant, None)
            self.store.forget(tenant)
            return
        self.unsaved[tenant] = entry

    # ---- the routing agent --------------------------------------------------------------

    async def route(self, stream: Any) -> None:
        """The agent: each record of the routing topics, in order."""
        async for event in stream.events():
            await self.on_record(event.value, event.message)

    async def on_record(self, value: bytes, message: Any) -> None:
        """Decode, upcast, hand to the tenant's router, send what it returned; a record
        that cannot be decoded or applied is dead-lettered, never a crash."""
        topic = message.topic
        self.stats["records"] += 1
        self.lags.append((time.time() - message.timestamp) * 1000)  # Faust: seconds
        try:
            env = upcast(decode(value))
        except (DecodeError, UpcastError) as exc:
            await self.dead_letter(value, f"{type(exc).__name__}: {exc}", topic)
            return
        if env.tenant == SYSTEM_TENANT:
            return  # node-level facts: not a tenant's routing input
        router = self.router_of(env.tenant)
        self.between_records.clear()
        try:
            try:
                outs = handle(router, env)
            except Exception as exc:  # a record the router cannot apply: never crash
                self.rebuild(env.tenant)  # without the half-applied changes
                await self.dead_letter(value, f"{type(exc).__name__}: {exc} (call "
                                              f"{env.call_id}, event {env.event_id})", topic, env)
                return
            entry = self.unsaved.setdefault(env.tenant, (message.partition, []))
            entry[1].append(env)
            for out in outs:
                await self.outputs[out.topic].send(key=out.key, value=encode(out.envelope))
                self.stats["sent"] += 1
                self._log_output(env, out.envelope)
            if len(entry[1]) >= SAVE_EVERY:
                self.save(env.tenant)
        finally:
            self.between_records.set()

    def _log_output(self, env: Envelope, out: Envelope) -> None:
        if out.type in ("offer_call", "connect_call", "hangup_leg"):
            log.info("%s %s", out.type, out.payload.get("command_id"),
                     extra=fields(env, call_id=out.call_id))
        elif out.type == "dead_lettered":
            self.stats["undeliverable"] += 1
            log.error("command not sent: %s", out.payload["reason"],
                      extra=fields(env, call_id=out.call_id))
        elif out.type == "state_corrected":
            self.stats["corrections"] += 1
            p = out.payload
            log.warning("corrected against the node: %s -> %s (%s)", p["what"],
                        p["action"], p["detail"], extra=fields(env, node=p["node"]))

    async def dead_letter(self, raw_value: bytes, reason: str, topic: str,
                          about: Envelope | None = None) -> None:
        self.stats["dead"] += 1
        log.warning("dead-lettering a record of %s: %s", topic, reason,
                    extra=fields(about) if about is not None else None)
        env = dead_letter_record(topic, reason, raw_value, source=self.settings.app_id)
        await self.outputs[topics.DEAD_LETTERS].send(key=topic.encode(), value=encode(env))

    # ---- the configuration forwarder ----------------------------------------------------

    async def forward_config(self) -> None:
        """Re-key the (compacted) config topic by tenant into the commands topic. Its own
        consumer group (`<app id>-config`) commits its position: a new deployment forwards
        every entity once (`config_from`), a restart resumes where it stopped. Config is
        whole-value and idempotent, so what at-least-once forwards twice is harmless."""
        from aiokafka import AIOKafkaConsumer

        settings = self.settings
        while True:
            consumer = AIOKafkaConsumer(topics.CONFIG, bootstrap_servers=settings.kafka_bootstrap,
                                        group_id=f"{settings.app_id}-config",
                                        auto_offset_reset=settings.config_from,
                                        enable_auto_commit=True, auto_commit_interval_ms=1000)
            try:
                await consumer.start()
                async for msg in consumer:
                    try:
                        env = decode(msg.value)
                    except DecodeError as exc:
                        await self.dead_letter(msg.value, f"DecodeError: {exc}", topics.CONFIG)
                        continue
                    await self.outputs[topics.CC_COMMANDS].send(
                        key=topics.tenant_key(env.tenant), value=msg.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: retry, never give up
                log.warning("config forwarder: %s: %s; retrying", type(exc).__name__, exc)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()

    # ---- time: live views, ticks, the restart's snapshot requests -----------------------

    async def publish_live(self, tenant: str, router: TenantRouter, now: int) -> None:
        """The supervisors' live view of a tenant (compacted topic: the API keeps the
        latest)."""
        live = Envelope(event_id=deterministic_id("live", tenant, now),
                        type="live_state_published", version=1, occurred_at=now,
                        tenant=tenant, source=self.settings.app_id, seq=None, call_id=None,
                        payload=live_view(router, now))
        await self.outputs[topics.LIVE].send(key=topics.tenant_key(tenant), value=encode(live))
        self.live_marks[tenant] = (router.version, now)

    async def live_changes(self) -> None:
        """Views of the tenants that changed since their last view (at most one per
        interval per tenant, however many records changed it)."""
        now = now_us()
        for tenant, router in list(self.cache.items()):
            published = self.live_marks.get(tenant)
            if published is None or published[0] != router.version:
                await self.publish_live(tenant, router, now)

    async def tick(self) -> None:
        """A tick per owned tenant that waits on time, its live view when due, and after
        a (re)start a snapshot request to each node that holds calls we hold."""
        if not self.gc_frozen:
            # What exists once the worker runs (modules, Faust, aiokafka: most objects)
            # leaves the collector's view: a full collection then scans only what came
            # later. Without it, one stalled routing for up to 70 ms (ACD bench).
            self.gc_frozen = True
            gc.freeze()
        now = now_us()
        tenants = set(self.cache) | self.store.tenants()
        for tenant in tenants:
            await self._tick_tenant(tenant, now)
        if not self.snapshots_requested and tenants:
            self.snapshots_requested = True
            for tenant in tenants:
                await self._request_snapshots(tenant, now)

    async def _tick_tenant(self, tenant: str, now: int) -> None:
        router = self.router_of(tenant)
        state = router.state
        if state.calls or state.offers or state.timers:
            # Only what waits on time needs ticks: calls (relaxation, overflow, hours),
            # offers (ring-no-answer), wrap-ups and penalties (timers).
            env = Envelope(event_id=deterministic_id("tick", self.settings.app_id, tenant, now),
                           type="tick", version=1, occurred_at=now, tenant=tenant,
                           source=self.settings.app_id, seq=None, call_id=None, payload={})
            await self.outputs[topics.CC_COMMANDS].send(key=topics.tenant_key(tenant),
                                                        value=encode(env))
        # The live view every LIVE_REFRESH_S even unchanged: a wallboard sees it is
        # fresh (changes go out sooner, live_changes).
        published = self.live_marks.get(tenant)
        if published is None or now - published[1] >= LIVE_REFRESH_S * 1_000_000:
            await self.publish_live(tenant, router, now)

    async def _request_snapshots(self, tenant: str, now: int) -> None:
        """After a (re)start, ask the bridges what really exists for calls we hold."""
        router = self.router_of(tenant)
        for node in sorted(set(router.call_nodes.values())):
            env = Envelope(
                event_id=deterministic_id("snapshot-request", tenant, node, now),
                type="request_snapshot", version=1, occurred_at=now, tenant=tenant,
                source=self.settings.app_id, seq=None, call_id=None,
                payload={"command_id": deterministic_id("snap", tenant, node, now),
                         "node": node, "reason": "worker started"})
            await self.outputs[topics.ROUTING_DECISIONS].send(key=topics.node_key(node),
                                                              value=encode(env))

    async def report(self) -> None:
        window = sorted(self.lags)
        self.lags.clear()
        p50 = window[len(window) // 2] if window else 0.0
        p99 = window[int(len(window) * 0.99)] if window else 0.0
        s = self.stats
        log.info("stats records=%d sent=%d writes=%d dead=%d undeliverable=%d "
                 "corrections=%d tenants=%d lag_p50_ms=%.0f lag_p99_ms=%.0f",
                 s["records"], s["sent"], self.store.writes, s["dead"],
                 s["undeliverable"], s["corrections"], len(self.cache), p50, p99)

    async def on_revoked(self, app: Any, revoked: Any, **_: Any) -> None:
        # Save what was handled before letting go: Faust may still commit the offsets of
        # those records (of partitions it gives back to this worker), and the new owner
        # recovers the table from the changelog once this rebalance completes.
        await self.save_between_records()
        await app.producer.flush()
        self.cache.clear()
        self.store.forget()  # the new owner rebuilds from the table; we reload what we keep
        self.snapshots_requested = False


def create_app(settings: WorkerSettings) -> faust.App:
    """The worker's Faust app (`Worker(settings).app`), what `tongdai worker` runs."""
    return Worker(settings).app


# A one-off client's first connection is waited for briefly: the worker's own retry loop
# (streams.cli), not kafka-python's 30 s default, decides how long Kafka is waited for.
_BOUNDED_BOOTSTRAP = {"bootstrap_timeout_ms": 5000, "reconnect_backoff_max_ms": 1000}


def _partition_of(tenant: str, partitions: int) -> int:
    """The partition every producer of the product puts a tenant's records on (murmur2)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(topics.tenant_key(tenant)) & 0x7FFFFFFF) % partitions


def replay(tenant: str, records: Iterator[Envelope]) -> TenantRouter:
    """A tenant's router folded from its records in log order, outputs discarded."""
    router = TenantRouter(tenant)
    for env in records:
        if env.tenant != tenant:
            continue
        try:
            handle(router, upcast(env))
        except Exception:  # the live worker dead-lettered it then: skip it the same way
            log.exception("rebuilding: a record skipped", extra=fields(env))
    return router


def rebuild_from_log(bootstrap: str, partitions: int, tenant: str) -> TenantRouter:
    """The tenant's router from the routing log (its FreeSWITCH facts and commands, the
    configuration included) up to the current end of the tenant's partition. Records of
    the two topics are merged by their broker timestamps, the order the worker saw
    them in within a margin of the produce latency."""
    from kafka import KafkaConsumer, TopicPartition

    part = _partition_of(tenant, partitions)
    tps = [TopicPartition(name, part) for name in (topics.FS_ROUTING, topics.CC_COMMANDS)]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, **_BOUNDED_BOOTSTRAP)
    started = time.monotonic()
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        rows: list[tuple[int, int, int, bytes]] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    if r.offset < ends[tp]:
                        rows.append((r.timestamp, tps.index(tp), r.offset, r.value))
    finally:
        consumer.close()
    rows.sort()

    def records() -> Iterator[Envelope]:
        for *_, value in rows:
            try:
                yield decode(value)
            except DecodeError:
                continue

    router = replay(tenant, records())
    log.info("rebuilt from %d records of the log in %.1f s", len(rows),
             time.monotonic() - started, extra={"tenant": tenant})
    return router


def ensure_topics(bootstrap: str, partitions: int, replication: int = 1) -> None:
    """Create the product's topics if missing (idempotent; Faust skips missing sources)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                             **_BOUNDED_BOOTSTRAP)
    try:
        existing = set(admin.list_topics())
        new = []
        for spec in topics.TOPICS:
            if spec.name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if spec.compacted else {}
            count = spec.partitions if spec.key != "tenant" else partitions
            new.append(NewTopic(spec.name, count, replication, topic_configs=configs))
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def start_group_at_end(bootstrap: str, group: str, names: list[str],
                       metadata_wait_s: float = 10.0) -> dict[str, int]:
    """Commit the current end offsets of `names` for a consumer group that has none yet.

    A new group told to start from "latest" starts at the end *when its partitions are
    assigned*, which may be seconds after it was launched: records written in between (an
    agent's login sent right after the worker started) would be skipped. Committing "now"
    before the worker starts closes that gap. A group with committed offsets is left alone.
    Returns the offsets committed per topic (summed over partitions).
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, request_timeout_ms=30000,
                             **_BOUNDED_BOOTSTRAP)
    try:
        # A topic created a moment ago (ensure_topics) may not be in the broker's metadata
        # yet: ask again for a few seconds before calling it missing.
        deadline = time.monotonic() + metadata_wait_s
        while True:
            parts = [TopicPartition(name, p) for name in names
                     for p in sorted(consumer.partitions_for_topic(name) or ())]
            missing = [name for name in names if not any(tp.topic == name for tp in parts)]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics without partitions after {metadata_wait_s:g} s "
                                   f"(not created?): {missing}")
            consumer.topics()  # a fresh metadata request
            time.sleep(0.2)
        committed = {tp: consumer.committed(tp) for tp in parts}
        if any(offset is not None for offset in committed.values()):
            return {}
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in parts})
        totals: dict[str, int] = {}
        for tp in parts:
            totals[tp.topic] = totals.get(tp.topic, 0) + ends[tp]
        return totals
    finally:
        consumer.close()
