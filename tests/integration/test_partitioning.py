"""Every producer of the product puts a tenant on the same partition: the worker reads
fs.routing (written by the bridge) and cc.commands (written by the API and the worker)
co-partitioned, so a tenant split over two partition numbers would be routed by two
workers at once."""
from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from esl_bridge.publisher import _KafkaPython, _Librdkafka
from esl_bridge.spool import Record


def _partitions_by_key(bootstrap: str, topic: str) -> dict[bytes, set[int]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, group_id=None)
    try:
        seen: dict[bytes, set[int]] = {}
        for record in consumer:
            seen.setdefault(record.key, set()).add(record.partition)
        return seen
    finally:
        consumer.close()


def test_the_bridge_and_the_other_producers_agree_on_a_tenants_partition(local_stack,
                                                                         kafka_topic):
    bootstrap = local_stack.kafka_bootstrap
    keys = [f"tenant-{i}".encode() for i in range(40)]
    for client in (_Librdkafka, _KafkaPython):
        sender = client(bootstrap, "test", 5, 10.0)
        sender.send_batch([Record(None, kafka_topic, k, b"x") for k in keys])
        sender.close()
    plain = KafkaProducer(bootstrap_servers=bootstrap)  # what the API and tests use
    for k in keys:
        plain.send(kafka_topic, key=k, value=b"y")
    plain.close()
    seen = _partitions_by_key(bootstrap, kafka_topic)
    assert set(seen) == set(keys)
    split = {k: p for k, p in seen.items() if len(p) != 1}
    assert split == {}, f"keys on more than one partition: {split}"
    assert len({next(iter(p)) for p in seen.values()}) > 1  # the keys do spread
