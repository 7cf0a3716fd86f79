"""The API's edge to Kafka: one producer per process (created on first use) and followers.

Followers share one consumer per process (librdkafka, no group: it reads every partition
of every followed topic) and one thread that hands each decoded envelope to its topic's
handlers. The config, live and audit views read their topic from the beginning and then
follow it; the pop-up stream starts at the end.
`MemoryBus` is the same interface without Kafka, for unit tests: publishing hands the
record to the followers of that topic at once.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from routing.contract import DecodeError, Envelope, decode, deterministic_id, edge, encode

from .errors import Unavailable

log = logging.getLogger("tongdai.api.bus")

#: The followers' one consumer: a fetch returns as soon as there is a record (a config
#: change made through another API process must be read here at once: the admin console
#: reads back what it saved), and with nothing new it waits this long on the broker.
FOLLOW_FETCH_MAX_WAIT_MS = 100
Handler = Callable[[Envelope], None]


def envelope(type_: str, tenant: str, payload: dict, call_id: str | None = None,
             source: str = "api", now_us: int | None = None) -> Envelope:
    """A new record from the API: a fresh id, the current time in µs."""
    at = now_us if now_us is not None else edge.now_us()
    return Envelope(event_id=deterministic_id(type_, tenant, at, uuid.uuid4().hex),
                    type=type_, version=1, occurred_at=at, tenant=tenant, source=source,
                    seq=None, call_id=call_id, payload=payload)


def fan_out(topic: str, *handlers: Handler) -> Handler:
    """One handler that gives each record to `handlers` in turn: one follower (one
    consumer, one decode of each record) feeds several views of a busy topic. A view that
    fails on a record is logged and the others still get it."""
    def apply(env: Envelope) -> None:
        for handler in handlers:
            try:
                handler(env)
            except Exception:  # a view bug must not starve the other views
                log.exception("handler of %s failed", topic)
    return apply


class Bus(Protocol):
    def publish(self, topic: str, key: bytes, env: Envelope, wait_s: float = 15.0) -> bool: ...

    def follow(self, topic: str, handler: Handler, from_start: bool = True) -> None: ...

    def caught_up(self) -> bool: ...

    def close(self) -> None: ...


class MemoryBus:
    """Kafka stand-in for tests: records are kept per topic and delivered synchronously."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes, Envelope]]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._lock = threading.RLock()

    def publish(self, topic: str, key: bytes, env: Envelope, wait_s: float = 15.0) -> bool:
        decode(encode(env))  # the same wire check Kafka readers apply
        with self._lock:
            self.records.setdefault(topic, []).append((key, env))
            handlers = list(self._handlers.get(topic, ()))
        for handler in handlers:
            handler(env)
        return True

    def follow(self, topic: str, handler: Handler, from_start: bool = True) -> None:
        with self._lock:
            self._handlers.setdefault(topic, []).append(handler)
            backlog = list(self.records.get(topic, ())) if from_start else []
        for _, env in backlog:
            handler(env)

    def caught_up(self) -> bool:
        return True

    def of_type(self, type_: str) -> list[Envelope]:
        return [e for recs in self.records.values() for _, e in recs if e.type == type_]

    def close(self) -> None:
        pass


class KafkaBus:
    """Kafka: a kafka-python producer (acks=all); the followers on one librdkafka consumer."""

    def __init__(self, bootstrap: str, client_id: str = "tongdai-api") -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follows: list[tuple[str, Handler, bool]] = []
        self._follower: threading.Thread | None = None
        self._changed = threading.Event()
        self._pending: set[str] = set()  # followed topics not read to their end yet

    def _get_producer(self):
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", client_id=self.client_id,
                    linger_ms=2, retries=5, request_timeout_ms=10000, max_block_ms=10000)
            return self._producer

    def publish(self, topic: str, key: bytes, env: Envelope, wait_s: float = 15.0) -> bool:
        """Send and wait up to `wait_s` for the broker's acknowledgement. True: stored.
        False: queued but not confirmed yet (a broker that stopped answering); it is still
        sent when the broker answers again, so the caller must say `pending`, never
        "failed". Raises Unavailable when the record was refused or could not even be
        queued (then it will never apply)."""
        from kafka.errors import KafkaTimeoutError

        try:
            future = self._get_producer().send(topic, key=key, value=encode(env))
        except Exception as exc:  # no metadata within max_block_ms, buffer full: not queued
            log.warning("publish to %s failed: %s", topic, type(exc).__name__)
            raise Unavailable(f"could not write to Kafka ({type(exc).__name__}); retry") from None
        try:
            future.get(timeout=wait_s)
            return True
        except KafkaTimeoutError:
            if future.is_done:  # the producer itself gave up: it will not be sent
                log.warning("publish to %s failed: delivery timed out", topic)
                raise Unavailable("Kafka did not take the record; retry") from None
            log.warning("publish to %s: not confirmed within %.0f s, still queued", topic,
                        wait_s)
            return False
        except Exception as exc:  # the broker refused it
            log.warning("publish to %s failed: %s", topic, type(exc).__name__)
            raise Unavailable(f"could not write to Kafka ({type(exc).__name__}); retry") from None

    def follow(self, topic: str, handler: Handler, from_start: bool = True) -> None:
        """`handler` gets every record of `topic` from its start (or from now on), in the
        follower thread. One consumer reads all followed topics: with a kafka-python
        consumer (and its I/O thread) per topic, each fetching again at every record, two
        API workers used 26-38 % of a core at 10 calls/s."""
        with self._lock:
            # one position per topic: its followers start alike
            if any(t == topic and f != from_start for t, _, f in self._follows):
                raise ValueError(f"{topic} is followed from_start="
                                 f"{not from_start} already")
            self._follows.append((topic, handler, from_start))
            self._pending.add(topic)
            self._changed.set()
            if self._follower is None:
                self._follower = threading.Thread(target=self._run, name="follow",
                                                  daemon=True)
                self._follower.start()

    def caught_up(self) -> bool:
        return not self._pending

    def _assign_new(self, consumer, assigned: set[str], ends: dict) -> None:
        """Assign the followed topics not assigned yet (from their start or end); a
        topic nobody wrote yet has nothing to catch up with and is looked for again."""
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        with self._lock:
            wanted: dict[str, bool] = {}
            for topic, _, from_start in self._follows:
                wanted[topic] = wanted.get(topic, False) or from_start
        new = [t for t in wanted if t not in assigned]
        if not new:
            return
        tps = []
        for topic in new:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                self._pending.discard(topic)  # retried at the next look
                continue
            for p in sorted(meta.partitions):
                tp = TopicPartition(topic, p, OFFSET_BEGINNING if wanted[topic] else OFFSET_END)
                low, high = consumer.get_watermark_offsets(tp, timeout=5)
                if wanted[topic] and high > low:
                    ends[(topic, p)] = high
                tps.append(tp)
            assigned.add(topic)
            if not any(t == topic for t, _ in ends):
                self._pending.discard(topic)
        if tps:
            consumer.incremental_assign(tps)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        while not self._stop.is_set():
            consumer = None
            try:
                consumer = Consumer({
                    "bootstrap.servers": self.bootstrap, "group.id": f"{self.client_id}-follow",
                    "client.id": self.client_id, "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.min.bytes": 1, "fetch.wait.max.ms": FOLLOW_FETCH_MAX_WAIT_MS,
                    "logger": log})
                assigned: set[str] = set()
                ends: dict[tuple[str, int], int] = {}  # where catching up ends
                next_look = 0.0
                while not self._stop.is_set():
                    if self._changed.is_set() or time.monotonic() >= next_look:
                        self._changed.clear()
                        self._assign_new(consumer, assigned, ends)
                        next_look = time.monotonic() + 2.0
                    # after the assignment: a topic just assigned has its handlers here
                    with self._lock:
                        handlers: dict[str, list[Handler]] = {}
                        for topic, handler, _ in self._follows:
                            handlers.setdefault(topic, []).append(handler)
                    for msg in edge.ready_records(consumer, 0.2, log):
                        topic = msg.topic()
                        try:
                            env = decode(msg.value())
                        except DecodeError:
                            env = None
                        if env is not None:
                            for handler in handlers.get(topic, ()):
                                try:
                                    handler(env)
                                except Exception:  # a view bug must not stop the follower
                                    log.exception("handler of %s failed", topic)
                        key = (topic, msg.partition())
                        if key in ends and msg.offset() + 1 >= ends[key]:
                            del ends[key]
                            if not any(t == topic for t, _ in ends):
                                self._pending.discard(topic)
            except Exception as exc:
                log.warning("follower: %s: %s; reconnecting", type(exc).__name__, exc)
                self._stop.wait(1)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:
                        pass

    def close(self) -> None:
        self._stop.set()
        if self._producer is not None:
            self._producer.close(timeout=5)
