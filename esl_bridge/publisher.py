"""The sender: drains the spool to Kafka, in order, confirming batch by batch.

Runs in its own OS thread (kafka-python is thread based; the ESL side is gevent), so a
slow or absent broker never blocks the ESL reader: events pile up in the spool instead.
`acks=all` with the idempotent producer; the spool cursor moves only after `flush()`
confirmed every record of a batch. A failed batch is re-sent from the cursor by a fresh
producer (an idempotent producer that saw a timeout may be unusable), after a backoff.
"""
from __future__ import annotations

import logging
import threading
import time

from .spool import Spool

log = logging.getLogger("tongdai.bridge.publisher")


class _Librdkafka:
    """The same send-a-batch-and-confirm-it contract on confluent-kafka (librdkafka).

    Why: librdkafka batches and talks to the brokers in its own C threads, outside the GIL,
    so producing no longer competes with the ESL reader for the one Python thread that may
    run (quick bridge bench, JSON, one session: 172 µs of bridge CPU per event with it,
    284 µs with kafka-python)."""

    def __init__(self, bootstrap: str, client_id: str, linger_ms: int,
                 send_timeout_s: float) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({
            "bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all",
            # A tenant's records must land on the partition every other producer (Java,
            # kafka-python, aiokafka: murmur2) puts that tenant on: the worker reads
            # fs.routing and cc.commands co-partitioned. librdkafka's default is CRC32.
            "partitioner": "murmur2_random",
            "enable.idempotence": True, "linger.ms": linger_ms,
            # A delivery report (a Python call) only for a record that failed: the batch
            # is confirmed by flush() returning with nothing left.
            "delivery.report.only.error": True,
            "batch.size": 1024 * 1024, "queue.buffering.max.messages": 200_000,
            "message.timeout.ms": int(send_timeout_s * 1000),
            "socket.timeout.ms": int(send_timeout_s * 1000)})
        self._timeout = send_timeout_s

    def send_batch(self, records: list) -> None:
        errors: list = []

        def delivered(err, _msg) -> None:
            if err is not None:
                errors.append(err)

        for r in records:
            while True:
                try:
                    self._producer.produce(r.topic, value=r.value, key=r.key,
                                           on_delivery=delivered)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    self._producer.poll(0.05)
        left = self._producer.flush(self._timeout)
        if left:
            raise TimeoutError(f"{left} records not confirmed within {self._timeout:.0f} s")
        if errors:
            raise RuntimeError(f"delivery failed: {errors[0]}")

    def close(self) -> None:
        self._producer.flush(1)


class _KafkaPython:
    """kafka-python's producer, idempotent, acks=all (used when confluent-kafka is not
    installed or `TONGDAI_KAFKA_CLIENT=kafka-python`)."""

    def __init__(self, bootstrap: str, client_id: str, linger_ms: int,
                 send_timeout_s: float) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, client_id=client_id, acks="all",
            enable_idempotence=True, linger_ms=linger_ms,
            batch_size=256 * 1024, compression_type=None, max_block_ms=5000,
            request_timeout_ms=int(send_timeout_s * 1000),
            delivery_timeout_ms=int(send_timeout_s * 1000) + linger_ms + 1000)
        self._timeout = send_timeout_s

    def send_batch(self, records: list) -> None:
        futures = [self._producer.send(r.topic, key=r.key, value=r.value) for r in records]
        self._producer.flush(timeout=self._timeout)
        for f in futures:
            f.get(timeout=0)  # raises the delivery error of any record

    def close(self) -> None:
        self._producer.close(timeout=1)


def producer_kind(wanted: str = "auto") -> str:
    """`confluent-kafka` when asked for or (auto) installed, else `kafka-python`."""
    if wanted in ("kafka-python", "confluent-kafka"):
        return wanted
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return "kafka-python"
    return "confluent-kafka"


class Publisher:
    def __init__(self, spool: Spool, bootstrap: str, *, batch: int = 2000,
                 linger_ms: int = 0, send_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.2, 5.0), client_id: str = "tongdai-bridge",
                 producer: str = "auto"):
        self.kind = producer_kind(producer)
        self.spool = spool
        self.bootstrap = bootstrap
        self.batch = batch
        self.linger_ms = linger_ms
        self.send_timeout_s = send_timeout_s
        self.backoff_s = backoff_s
        self.client_id = client_id
        self.sent = 0
        self.failures = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-publisher", daemon=True)
        self._producer = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop after sending what is spooled (bounded wait); the rest stays on disk."""
        deadline = time.monotonic() + drain_timeout_s
        while self.spool.pending_bytes and time.monotonic() < deadline and self.connected:
            time.sleep(0.05)
        self._stop.set()
        with self.spool.readable:
            self.spool.readable.notify_all()
        self._thread.join(timeout=self.send_timeout_s + 5)
        self._close_producer()

    def _producer_or_new(self):
        if self._producer is None:
            make = _Librdkafka if self.kind == "confluent-kafka" else _KafkaPython
            self._producer = make(self.bootstrap, self.client_id, self.linger_ms,
                                  self.send_timeout_s)
        return self._producer

    def _close_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close()
            except Exception:  # closing a broken producer must not mask the real error
                log.debug("closing producer failed", exc_info=True)
            self._producer = None

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            records = self.spool.read(self.batch, timeout=0.2)
            if not records:
                continue
            try:
                self._producer_or_new().send_batch(records)
            except Exception as exc:
                self.failures += 1
                if self.connected or self.failures == 1:
                    log.warning("kafka unavailable (%s: %s); spooling, %d bytes pending",
                                type(exc).__name__, exc, self.spool.pending_bytes)
                self.connected = False
                self._close_producer()
                self.spool.rewind()
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            if not self.connected:
                log.info("kafka reachable: sending in order, %d bytes pending",
                         self.spool.pending_bytes)
            self.connected = True
            delay = self.backoff_s[0]
            self.spool.ack(records[-1].position)
            self.sent += len(records)
