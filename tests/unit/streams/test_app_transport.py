"""The worker's Kafka consumer fetches with the configured wait, not Faust's 1.5 s."""
from __future__ import annotations

import asyncio

from streams.app import create_app
from streams.settings import load


def test_the_worker_consumer_uses_the_configured_fetch_wait():
    async def build() -> int:
        app = create_app(load({"TONGDAI_FETCH_WAIT_MS": "7"}))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms  # what aiokafka hands its fetcher at start
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == 7

