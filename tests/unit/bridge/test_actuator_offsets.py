"""Where the actuator starts reading its decisions (esl_bridge.actuator.start_offsets): a
broker that cannot say yet ("not leader for partition", just started) is asked again; the
assignment callback never raises (an exception there ended the decisions thread)."""
from __future__ import annotations

import threading

import pytest
from confluent_kafka import OFFSET_END, OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from esl_bridge.actuator import start_offsets

pytestmark = pytest.mark.bridge

NOT_LEADER = KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))


class Consumer:
    """librdkafka's consumer as start_offsets uses it: committed offsets and watermarks."""

    def __init__(self, committed: dict[int, int], ends: dict[int, int], failures: int) -> None:
        self.committed_at, self.ends, self.failures = committed, ends, failures
        self.asked = 0

    def committed(self, partitions, timeout):
        return [TopicPartition(tp.topic, tp.partition,
                               self.committed_at.get(tp.partition, OFFSET_INVALID))
                for tp in partitions]

    def get_watermark_offsets(self, tp, timeout):
        self.asked += 1
        if self.failures:
            self.failures -= 1
            raise NOT_LEADER
        return 0, self.ends[tp.partition]


def parts(*numbers: int) -> list[TopicPartition]:
    return [TopicPartition("tongdai.routing.decisions.v1", n) for n in numbers]


def test_committed_offsets_are_kept_and_a_new_partition_starts_at_its_end():
    tps = parts(0, 1)
    start_offsets(Consumer({0: 42}, {0: 50, 1: 9}, failures=0), tps, threading.Event())
    assert [tp.offset for tp in tps] == [42, 9]


def test_a_broker_not_ready_yet_is_asked_again():
    consumer = Consumer({}, {0: 5, 1: 6}, failures=2)
    tps = parts(0, 1)
    start_offsets(consumer, tps, threading.Event())
    assert [tp.offset for tp in tps] == [5, 6]
    assert consumer.asked == 4  # two refusals, then both partitions


def test_a_broker_that_never_answers_leaves_the_partitions_at_their_end_without_raising():
    tps = parts(0, 1)
    start_offsets(Consumer({}, {0: 5, 1: 6}, failures=10**6), tps, threading.Event(),
                  attempts=3)
    assert [tp.offset for tp in tps] == [OFFSET_END, OFFSET_END]
