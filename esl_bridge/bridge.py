"""`tongdai bridge`: FreeSWITCH events into Kafka, routing decisions back over ESL.

One process, gevent inside (our own ESL client), never Faust. Per FreeSWITCH node a NodeLink
connects, authenticates, subscribes to what the product uses (not ALL), takes a snapshot,
and turns every event frame into an envelope appended to the disk spool, in the reading
greenlet. The Publisher thread drains the spool to Kafka. On silence (no HEARTBEAT nor any
event for `heartbeat_timeout_s`) or disconnect the link reconnects with backoff, then
publishes a fresh snapshot so consumers reconcile what changed meanwhile.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import orjson

from routing.contract import Envelope, deterministic_id, encode, topics
from routing.contract.edge import SYSTEM_TENANT, dead_letter, now_us

from . import normalize, protocol
from .connection import AuthenticationFailed, Connection
from .legs import LegBook, from_dump
from .normalize import NormalizerConfig, Skipped
from .protocol import Frame, ProtocolError
from .publisher import Publisher
from .settings import BridgeSettings, Node
from .spool import Spool, SpoolFull

log = logging.getLogger("tongdai.bridge")


class Outbox:
    """Where the bridge's envelopes go: the spool (append never blocks on Kafka)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.published = 0

    def put(self, envelope: Envelope) -> None:
        topic = topics.DEAD_LETTERS if envelope.type == "dead_lettered" else topics.FS_EVENTS
        key = (envelope.payload["topic"].encode() if envelope.type == "dead_lettered"
               else topics.tenant_key(envelope.tenant))
        value = encode(envelope)
        self._append(topic, key, value)
        if topics.for_router(envelope.type, envelope.payload):
            self._append(topics.FS_ROUTING, key, value)
        self.published += 1

    def _append(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.spool.append(topic, key, value)
                return
            except SpoolFull as exc:
                # Backpressure: stop reading ESL (FreeSWITCH buffers) until Kafka drains.
                log.error("%s; pausing ESL reads", exc)
                gevent.sleep(0.5)


class NodeLink:
    """The life of one FreeSWITCH node's connection: connect, subscribe, snapshot, read."""

    def __init__(self, node: Node, settings: BridgeSettings, outbox: Outbox,
                 config: NormalizerConfig, memory: NodeMemory | None = None) -> None:
        self.node = node
        self.settings = settings
        self.outbox = outbox
        self.config = config
        self.core_uuid: str | None = None
        self.connection: Connection | None = None
        self.connected = gevent.event.Event()
        self.last_seen = time.monotonic()
        self.connects = 0
        self.events = 0
        self.skipped = 0
        self.dead = 0
        # What the node's events said of each live leg (show channels has no channel
        # variables), and which legs hung up: for snapshots and the actuator.
        self.legs = LegBook()
        self.legs.tenants_seen.add(settings.default_tenant)
        self.snapshots = 0
        self._opaque: set[str] = set()  # legs uuid_dump said are none of ours
        # The legs known up, kept on disk across a crash; and when the node was last
        # heard from (the earliest a leg that vanished unheard can have ended).
        self.journal = LegJournal(os.path.join(
            settings.actuator_state_dir,
            "legs-" + re.sub(r"[^A-Za-z0-9._-]", "_", node.address) + ".jsonl"))
        restored, self.heard_us = self.journal.load()
        self.legs.restore(restored)
        self._lost_at = self.heard_us
        self._stopping = False
        self._greenlet: gevent.Greenlet | None = None
        # The actuator's correlation of bgapi jobs: (job uuid, result body).
        self.job_listener: Callable[[str, str], None] | None = None
        self.memory = memory

    @property
    def name(self) -> str:
        return self.core_uuid or self.node.address

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self.connection is not None:
            try:
                self.connection.stop()
            except Exception:
                self.connection.close()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
        self.journal.close()

    # ---- event path (runs in the connection's reading greenlet)
    def on_event(self, frame: Frame) -> None:
        self.last_seen = time.monotonic()
        self.heard_us = now_us()
        try:
            event = protocol.parse_event(frame)
        except ProtocolError as exc:
            self._dead(f"unparseable event: {exc}", frame.body or b"")
            return
        if self.core_uuid is None and event.headers.get("Core-UUID"):
            self.core_uuid = event.headers["Core-UUID"]
        try:
            envelope = normalize.normalize(event, self.config)
        except Skipped:
            self.skipped += 1
            return
        except (ValueError, KeyError) as exc:
            self._dead(f"cannot normalize {event.name or '?'}: {exc}", frame.body or b"")
            return
        if envelope.call_id:
            self._remember(envelope)
            if self.memory is not None and self.core_uuid:
                self.memory.served(self.node.address, envelope.tenant)
        self.events += 1
        self.outbox.put(envelope)
        if envelope.type == "background_job_completed" and self.job_listener is not None:
            self.job_listener(envelope.payload["job_uuid"], event.body or "")

    def _remember(self, envelope: Envelope) -> None:
        self.legs.observe(envelope)
        self.legs.tenants_seen.add(envelope.tenant)
        leg = envelope.payload.get("leg_id")
        if leg:
            info = self.legs.info(leg)
            if info is not None:
                self.journal.note(leg, info, envelope.occurred_at)
            elif self.legs.is_gone(leg):
                self.journal.gone(leg, envelope.occurred_at)

    def on_protocol_error(self, exc: ProtocolError) -> None:
        self._dead(f"ESL framing error: {exc}", exc.raw)

    def _dead(self, reason: str, raw: bytes) -> None:
        self.dead += 1
        log.warning("dead-lettering a frame: %s", reason, extra={"node": self.node.address})
        self.outbox.put(dead_letter(topics.FS_EVENTS, reason, raw, source=self.name))

    # ---- connection life
    def _run(self) -> None:
        delay = self.settings.reconnect_min_s
        while not self._stopping:
            started = time.monotonic()
            try:
                self._session()
            except Exception as exc:  # any failure of a session ends in a reconnect
                log.warning("%s: %s", type(exc).__name__, exc,
                            extra={"node": self.node.address})
            self.connected.clear()
            if self._stopping:
                break
            self._status("down", "connection lost; reconnecting")
            if time.monotonic() - started > 30:
                delay = self.settings.reconnect_min_s  # it was up for a while: retry soon
            gevent.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    def _session(self) -> None:
        self._lost_at = self.heard_us  # what ended from here on until the snapshot was unheard
        conn = Connection(self.node.host, self.node.port, self.node.password,
                          on_event=self.on_event, on_protocol_error=self.on_protocol_error,
                          wake_ms=self.settings.esl_wake_ms)
        self.connection = conn
        try:
            conn.connect()
        except AuthenticationFailed:
            raise ConnectionError("FreeSWITCH refused the ESL password") from None
        self.connects += 1
        names = " ".join(normalize.SUBSCRIBED_EVENTS)
        subclasses = " ".join(normalize.SUBSCRIBED_SUBCLASSES)
        reply = conn.send(f"event {self.settings.event_format} {names} CUSTOM {subclasses}")
        if not reply.text.startswith("+OK"):
            raise ConnectionError(f"subscription refused: {reply.text}")
        core = conn.api("global_getvar core_uuid")
        if core.ok or (core.text and not core.text.startswith("-ERR")):
            self.core_uuid = core.text.strip() or self.core_uuid
        self.last_seen = time.monotonic()
        self._forget_previous_node()
        self.snapshot("connected" if self.connects == 1 else "reconnected")
        self._status("up", f"connected to {self.node.address}")
        self.connected.set()
        log.info("connected, subscribed (%s)", self.settings.event_format,
                 extra={"node": self.node.address, "core_uuid": self.name})
        next_snapshot = time.monotonic() + self.settings.snapshot_interval_s
        while not conn.closed.wait(timeout=1.0):
            if time.monotonic() >= next_snapshot:
                # A standing reconciliation, not only at reconnect: whatever the router
                # missed (a lost event, a dropped command) is corrected within seconds.
                next_snapshot = time.monotonic() + self.settings.snapshot_interval_s
                self.snapshot("periodic")
            silent = time.monotonic() - self.last_seen
            if silent > self.settings.heartbeat_timeout_s:
                self._status("silent", f"no HEARTBEAT nor event for {silent:.0f} s")
                log.warning("silent for %.0f s, reconnecting", silent,
                            extra={"node": self.node.address})
                conn.close()
                conn.closed.wait(timeout=5)
                return

    def _forget_previous_node(self) -> None:
        """This address now answers with another Core-UUID: FreeSWITCH restarted, and every
        call of the old node is gone. Say so (an empty snapshot of the old node per tenant
        it served) so the routers end those calls instead of waiting for them forever."""
        if self.memory is None or not self.core_uuid:
            return
        old, tenants = self.memory.swap(self.node.address, self.core_uuid)
        if old is None or old == self.core_uuid:
            return
        log.warning("restarted (Core-UUID %s -> %s): its calls are gone", old, self.core_uuid,
                    extra={"node": self.node.address})
        at = now_us()
        for tenant in sorted(tenants):
            self.outbox.put(Envelope(
                event_id=deterministic_id("snapshot", old, tenant, at), type="node_snapshot_taken",
                version=2, occurred_at=at, tenant=tenant, source=old, seq=None, call_id=None,
                payload={"node": old, "reason": "node_restarted", "channels": [],
                         "registrations": []}))

    def snapshot(self, reason: str) -> None:
        """Publish what exists on the node now, per tenant, so consumers can reconcile.
        Each channel row carries what the bridge knows of the leg (`tongdai`); a parked
        leg it never saw (events lost while it was away) is read with `uuid_dump`."""
        conn = self.connection
        assert conn is not None
        # The snapshot's time is when the listing was asked for: an event that arrives
        # while it is read (and is published before it) is younger than the snapshot, and
        # the routers leave what is younger alone.
        at = now_us()
        channels = _json_rows(conn.api("show channels as json").text)
        registrations = _json_rows(conn.api("show registrations as json").text)
        by_tenant: dict[str, dict[str, list]] = {
            t: {"channels": [], "registrations": []} for t in self.legs.tenants_seen}
        unowned: list[tuple[str, str]] = []
        present = {str(ch.get("uuid") or "") for ch in channels}
        self._opaque &= present
        if reason != "periodic":
            self._tell_vanished(present, at)
        for ch in channels:
            uuid = str(ch.get("uuid") or "")
            info = self.legs.info(uuid)
            if (info is None or info.get("restored")) and uuid and uuid not in self._opaque:
                # A leg the bridge never heard of (it was away), or knows only from its
                # journal: its variables say whose it is and whether it is bridged now.
                # Asked once: the book keeps the answer, and a leg that is none of the
                # product's is not asked again.
                info = self._dump(uuid) or info
                if info is None:
                    self._opaque.add(uuid)
            if info is not None:
                ch = {**ch, "tongdai": info}
            tenant = (info or {}).get("tenant") or normalize.tenant_of_domain(
                (ch.get("presence_id") or "").rpartition("@")[2], self.config)
            if info is None and uuid:
                unowned.append((tenant, uuid))
            by_tenant.setdefault(tenant, {"channels": [], "registrations": []})
            by_tenant[tenant]["channels"].append(ch)
        # A channel whose variables could not be read has a tenant guessed from its
        # presence only; it may be one another tenant's router believes in. It exists, so
        # no tenant's snapshot may say it is gone: the others get its uuid, nothing more.
        for tenant, content in by_tenant.items():
            content["channels"].extend({"uuid": u, "unowned": True}
                                       for t, u in unowned if t != tenant)
        for reg in registrations:
            tenant = normalize.tenant_of_domain(reg.get("realm") or reg.get("reg_domain"),
                                                self.config)
            by_tenant.setdefault(tenant, {"channels": [], "registrations": []})
            by_tenant[tenant]["registrations"].append(reg)
        self.snapshots += 1
        self.journal.rewrite(at)
        for tenant, content in sorted(by_tenant.items()):
            self.outbox.put(Envelope(
                event_id=deterministic_id("snapshot", self.name, tenant, at), type="node_snapshot_taken",
                version=2, occurred_at=at, tenant=tenant, source=self.name, seq=None,
                call_id=None, payload={"node": self.name, "reason": reason, **content}))

    def _tell_vanished(self, present: set[str], at: int) -> None:
        """Legs known up when the bridge lost the node (or was killed) that the node no
        longer has: their hangup was never heard. Each is told once, `channel_vanished`,
        dated when the node was last heard from (the earliest it can have ended), so the
        router and the call log end them as the hangup would have."""
        for leg, info in self.legs.vanished(present, before_us=at):
            self.journal.gone(leg, at)
            lost = min(self._lost_at or at, at)
            payload = {"leg_id": leg, "leg": info.get("leg") or "a",
                       "offer_id": info.get("offer_id"), "extension": info.get("extension"),
                       "last_heard_us": lost, "noticed_us": at}
            self.outbox.put(Envelope(
                event_id=deterministic_id("vanished", self.name, leg), type="channel_vanished",
                version=1, occurred_at=lost, tenant=info["tenant"], source=self.name,
                seq=None, call_id=info.get("call_id") or leg, payload=payload))
            log.warning("leg %s (call %s) ended while no bridge was connected: told as "
                        "vanished", leg, info.get("call_id"), extra={"node": self.node.address})

    def _dump(self, uuid: str) -> dict[str, Any] | None:
        """What a leg the bridge never saw is, from its channel variables."""
        reply = self.connection.api(f"uuid_dump {uuid} json")  # type: ignore[union-attr]
        try:
            dump = orjson.loads(reply.text) if reply.text.lstrip().startswith("{") else None
        except orjson.JSONDecodeError:
            dump = None
        info = from_dump(dump, self.config) if isinstance(dump, dict) else None
        if info is not None:
            self.legs.learn(uuid, info)
            log.info("learnt a leg from uuid_dump%s",
                     ", parked for queue " + str(info["queue"]) if info.get("parked_us") else "",
                     extra={"node": self.node.address, "leg": uuid, "tenant": info["tenant"],
                            "call_id": info["call_id"]})
        return info

    def _status(self, status: str, detail: str) -> None:
        at = now_us()
        self.outbox.put(Envelope(
            event_id=deterministic_id("status", self.name, status, at), type="node_status_changed",
            version=1, occurred_at=at, tenant=SYSTEM_TENANT, source=self.name,
            seq=None, call_id=None, payload={"node": self.name, "status": status,
                                             "detail": detail}))


def _json_rows(text: str) -> list[dict[str, Any]]:
    """Rows of `show ... as json` ({"row_count": 0} when empty); [] on an error reply."""
    import orjson

    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    rows = data.get("rows", []) if isinstance(data, dict) else []
    return [r for r in rows if isinstance(r, dict)]


class LegJournal:
    """The legs a bridge knows are up on one node, on disk: a bridge restarted after a
    crash still knows them, so a leg that ended while no bridge was connected is told
    (`channel_vanished`) instead of never. Append-only lines (a leg's identity when it
    changes, its end), rewritten whole at each snapshot; a torn last line is skipped."""

    _KEYS = ("tenant", "call_id", "leg", "offer_id", "extension")

    def __init__(self, path: str) -> None:
        self.path = path
        self._known: dict[str, tuple] = {}
        self._fd: int | None = None  # kept open for appends: one write(2) per line

    def load(self) -> tuple[dict[str, dict[str, Any]], int]:
        """The legs up when the journal was last written, and when that was (µs)."""
        legs: dict[str, dict[str, Any]] = {}
        last = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            lines = data.splitlines()
        except OSError:
            return legs, 0
        if data and not data.endswith(b"\n"):
            self._append_raw(b"\n")  # a torn last line stays alone: later lines are whole
        for line in lines:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            last = max(last, int(rec.get("t") or 0))
            leg = rec.get("u")
            if not leg:
                continue
            if rec.get("g"):
                legs.pop(leg, None)
            elif isinstance(rec.get("i"), dict) and rec["i"].get("tenant"):
                legs[leg] = rec["i"]
        self._known = {leg: tuple(i.get(k) for k in self._KEYS) for leg, i in legs.items()}
        return legs, last

    def note(self, leg: str, info: dict[str, Any], at: int) -> None:
        key = tuple(info.get(k) for k in self._KEYS)
        if self._known.get(leg) != key:
            self._known[leg] = key
            self._append({"u": leg, "i": {k: v for k, v in zip(self._KEYS, key) if v},
                          "t": at})

    def gone(self, leg: str, at: int) -> None:
        if self._known.pop(leg, None) is not None:
            self._append({"u": leg, "g": 1, "t": at})

    def rewrite(self, at: int) -> None:
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps({"t": at}) + b"\n")
                for leg, key in self._known.items():
                    f.write(orjson.dumps({"u": leg, "i": {k: v for k, v in zip(self._KEYS, key)
                                                          if v}, "t": at}) + b"\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write the legs journal %s: %s", self.path, exc)
        self.close()  # the next append opens the new file

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, rec: dict[str, Any]) -> None:
        self._append_raw(orjson.dumps(rec) + b"\n")

    def _append_raw(self, data: bytes) -> None:
        # Not fsynced: a killed process's writes are in the page cache already; only a
        # machine crash loses the last lines (and the switch's calls with it).
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, data)
        except OSError as exc:
            self.close()
            log.warning("cannot append to the legs journal %s: %s", self.path, exc)


class NodeMemory:
    """Per node address: the last Core-UUID seen and the tenants whose calls it carried.
    Kept in a small JSON file so a restarted bridge still recognises a restarted node."""

    def __init__(self, path: str) -> None:
        import json
        import os

        self.path = path
        self._json, self._os = json, os
        try:
            with open(path) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            raw = {}
        self.nodes: dict[str, dict] = {a: {"core": v.get("core"), "tenants": set(v.get("tenants", ()))}
                                       for a, v in raw.items()}
        self._dirty = False

    def swap(self, address: str, core: str) -> tuple[str | None, set[str]]:
        entry = self.nodes.get(address, {"core": None, "tenants": set()})
        old, tenants = entry["core"], set(entry["tenants"])
        self.nodes[address] = {"core": core, "tenants": set() if old != core else tenants}
        self.save()
        return old, tenants

    def served(self, address: str, tenant: str) -> None:
        entry = self.nodes.setdefault(address, {"core": None, "tenants": set()})
        if tenant not in entry["tenants"]:
            entry["tenants"].add(tenant)
            self.save()

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            self._json.dump({a: {"core": v["core"], "tenants": sorted(v["tenants"])}
                             for a, v in self.nodes.items()}, f)
        self._os.replace(tmp, self.path)


class Bridge:
    """The whole bridge process: spool, publisher, one NodeLink per node, the actuator."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool_dir, settings.spool_max_mb << 20)
        self.outbox = Outbox(self.spool)
        self.publisher = Publisher(self.spool, settings.kafka_bootstrap,
                                   linger_ms=settings.linger_ms,
                                   client_id=f"tongdai-{settings.bridge_name}",
                                   producer=settings.kafka_client)
        config = NormalizerConfig(settings.default_tenant, settings.country_code,
                                  settings.domain_map)
        import os

        os.makedirs(settings.actuator_state_dir, exist_ok=True)
        memory = NodeMemory(os.path.join(settings.actuator_state_dir, "nodes.json"))
        self.links = [NodeLink(n, settings, self.outbox, config, memory)
                      for n in settings.nodes]
        self.actuator = None
        if settings.actuator:
            from .actuator import Actuator

            self.actuator = Actuator(settings, self.links, self.outbox)

    def start(self) -> None:
        self.publisher.start()
        for link in self.links:
            link.start()
        if self.actuator is not None:
            self.actuator.start()

    def stop(self) -> None:
        if self.actuator is not None:
            self.actuator.stop()
        for link in self.links:
            link.stop()
        self.publisher.stop()
        self.spool.close()

    def stats(self) -> dict[str, Any]:
        return {
            "events": sum(l.events for l in self.links),
            "skipped": sum(l.skipped for l in self.links),
            "dead_lettered": sum(l.dead for l in self.links),
            "snapshots": sum(l.snapshots for l in self.links),
            "decisions_dead_lettered": self.actuator.dead if self.actuator else 0,
            "decisions_refused": self.actuator.refused if self.actuator else 0,
            "sent_to_kafka": self.publisher.sent,
            "spool_pending_bytes": self.spool.pending_bytes,
            "kafka": "up" if self.publisher.connected else "down",
            "nodes": {l.node.address: ("up" if l.connected.is_set() else "down")
                      for l in self.links},
        }
