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


class Publisher:
    def __init__(self, spool: Spool, bootstrap: str, *, batch: int = 2000,
                 linger_ms: int = 5, send_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.2, 5.0), client_id: str = "tongdai-bridge"):
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
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=self.client_id, acks="all",
                enable_idempotence=True, linger_ms=self.linger_ms,
                batch_size=256 * 1024, compression_type=None, max_block_ms=5000,
                request_timeout_ms=int(self.send_timeout_s * 1000),
                delivery_timeout_ms=int(self.send_timeout_s * 1000) + self.linger_ms + 1000)
        return self._producer

    def _close_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
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
                producer = self._producer_or_new()
                futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
                producer.flush(timeout=self.send_timeout_s)
                for f in futures:
                    f.get(timeout=0)  # raises the delivery error of any record
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
