"""Fixtures on the real local stack: use it if it runs, start it if not.

A stack these fixtures started is stopped at the end of the session; one that was
already running is left alone. Every test gets its own topic / database.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deploy.local import settings as stack_settings
from deploy.local import stack


@pytest.fixture(scope="session")
def local_stack() -> Iterator[stack_settings.StackSettings]:
    settings = stack_settings.load()
    before = stack.status(settings)
    started = not all(h.healthy for h in before)
    if started:
        try:
            stack.up(settings)
        except stack.StackError as exc:
            pytest.fail(f"the local stack did not start: {exc}")
    yield settings
    if started:
        stack.down(settings)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    base = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafka_topic(local_stack, unique_name) -> Iterator[str]:
    """A fresh topic with 4 partitions, deleted afterwards."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=local_stack.kafka_bootstrap,
                             request_timeout_ms=10000)
    name = unique_name.replace("_", "-")
    admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


@pytest.fixture
def clickhouse_db(local_stack, unique_name) -> Iterator[tuple]:
    """(client, database): a fresh database on the local server, dropped afterwards."""
    client = local_stack.clickhouse_client()
    client.execute(f"CREATE DATABASE {unique_name}")
    try:
        yield client, unique_name
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {unique_name}")
        client.disconnect()
