"""The API's edge to Kafka: one producer per process (created on first use) and followers.

A follower is a thread with its own consumer (no group: it reads every partition) that
hands each decoded envelope to a handler. The config, live and audit views read their
topic from the beginning and then follow it; the pop-up stream starts at the end.
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

#: A follower's fetch waits for this much data or this long, whichever comes first. With
#: the broker's defaults (1 byte), every API process's every follower fetched again as
#: soon as one event came, each fetch a round trip for the broker and a wake-up here.
FOLLOW_FETCH_MIN_BYTES = 64 * 1024
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
    """Kafka through kafka-python: acks=all producer; one consumer thread per follow()."""

    def __init__(self, bootstrap: str, client_id: str = "tongdai-api") -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending: set[str] = set()  # followers that have not reached the end yet

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
        name = f"{topic}#{len(self._threads)}"
        self._pending.add(name)
        thread = threading.Thread(target=self._run, args=(name, topic, handler, from_start),
                                  name=f"follow-{topic}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def caught_up(self) -> bool:
        return not self._pending

    def _run(self, name: str, topic: str, handler: Handler, from_start: bool) -> None:
        from kafka import KafkaConsumer, TopicPartition

        while not self._stop.is_set():
            consumer = None
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                         enable_auto_commit=False, client_id=self.client_id,
                                         consumer_timeout_ms=1000,
                                         fetch_min_bytes=FOLLOW_FETCH_MIN_BYTES,
                                         fetch_max_wait_ms=FOLLOW_FETCH_MAX_WAIT_MS)
                parts = None
                for _ in range(5):
                    parts = consumer.partitions_for_topic(topic)
                    if parts or self._stop.is_set():
                        break
                    time.sleep(0.2)
                if not parts:
                    # A topic nobody wrote yet: nothing to catch up with.
                    self._pending.discard(name)
                    consumer.close()
                    self._stop.wait(2)
                    continue
                tps = [TopicPartition(topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                if from_start:
                    consumer.seek_to_beginning(*tps)
                else:
                    consumer.seek_to_end(*tps)
                ends = consumer.end_offsets(tps)
                for tp in tps:
                    consumer.position(tp)
                while not self._stop.is_set():
                    for _tp, batch in consumer.poll(timeout_ms=200).items():
                        for record in batch:
                            try:
                                handler(decode(record.value))
                            except DecodeError:
                                continue
                            except Exception:  # a view bug must not stop the follower
                                log.exception("handler of %s failed", topic)
                    if name in self._pending and all(
                            consumer.position(tp) >= ends[tp] for tp in tps):
                        self._pending.discard(name)
            except Exception as exc:
                log.warning("follower of %s: %s; reconnecting", topic, type(exc).__name__)
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
