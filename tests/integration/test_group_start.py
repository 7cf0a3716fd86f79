"""A new consumer group started "now" does not skip what is written while it joins."""
from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from streams.app import start_group_at_end


def test_records_written_before_the_group_joins_are_consumed(local_stack, kafka_topic,
                                                              unique_name):
    bootstrap = local_stack.kafka_bootstrap
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(3):  # history: before the group's start, never to be read
        producer.send(kafka_topic, key=b"k%d" % i, value=b"old-%d" % i)
    producer.flush()

    committed = start_group_at_end(bootstrap, unique_name, [kafka_topic])
    assert committed == {kafka_topic: 3}
    # A second call leaves the group where it is (it has offsets now).
    assert start_group_at_end(bootstrap, unique_name, [kafka_topic]) == {}

    # Written after the start, before any member of the group joined ("latest" would skip
    # these: it resolves the end when the partitions are assigned, which is later).
    for i in range(5):
        producer.send(kafka_topic, key=b"k%d" % i, value=b"new-%d" % i)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(kafka_topic, bootstrap_servers=bootstrap, group_id=unique_name,
                             auto_offset_reset="latest", consumer_timeout_ms=8000)
    try:
        seen = sorted(record.value for record in consumer)
    finally:
        consumer.close()
    assert seen == [b"new-%d" % i for i in range(5)]


def test_a_topic_that_does_not_exist_is_named_after_a_bounded_wait(local_stack, unique_name):
    import time

    import pytest

    started = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"after 1 s \(not created\?\): \['{unique_name}'\]"):
        start_group_at_end(local_stack.kafka_bootstrap, unique_name, [unique_name],
                           metadata_wait_s=1.0)
    assert time.monotonic() - started < 15
