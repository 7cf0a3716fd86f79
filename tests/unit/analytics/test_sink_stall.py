"""A sink whose consumer stops returning records that wait in its partitions reopens it."""
from __future__ import annotations

from collections import namedtuple

import pytest

from analytics.settings import AnalyticsSettings
from analytics.sink import Sink

pytestmark = pytest.mark.analytics

TP = namedtuple("TP", "topic partition")


class StuckConsumer:
    """Assigned one partition whose log end (10) is past its position (3), yet every poll
    comes back empty: a state kafka-python 3's consumer can be left in, which the sink
    must get out of by itself."""

    def __init__(self, end: int = 10, position: int = 3) -> None:
        self.tp = TP("events", 0)
        self.end, self.pos = end, position
        self.closed = False
        self.polls = 0

    def poll(self, timeout_ms=0, max_records=None, update_offsets=True):
        self.polls += 1
        return {}

    def assignment(self):
        return {self.tp}

    def paused(self):
        return set()

    def end_offsets(self, tps):
        return {tp: self.end for tp in tps}

    def position(self, tp):
        return self.pos

    def close(self, autocommit=True):
        self.closed = True


class NoDatabase:
    """Never written to: these sinks receive no records."""

    database = "unused"


class Clocked(Sink):
    def __init__(self, *args, fresh, **kw):
        super().__init__(*args, **kw)
        self.fresh = fresh  # what a reopen gets

    def _make_consumer(self):
        return self.fresh


def run_until(sink: Sink, consumer, monkeypatch, polls: int) -> None:
    now = [0.0]

    def clock() -> float:  # time moves on at every look at the clock
        now[0] += 0.5
        return now[0]

    monkeypatch.setattr("analytics.sink.time.monotonic", clock)
    sink.run(until=lambda: consumer.polls >= polls or sink.reopened > 0)


def test_a_stuck_partition_gets_the_consumer_reopened(monkeypatch, caplog):
    stuck, fresh = StuckConsumer(), StuckConsumer(end=3)
    sink = Clocked(AnalyticsSettings(sink_stall_s=5), NoDatabase(), consumer=stuck, fresh=fresh)
    run_until(sink, stuck, monkeypatch, polls=1000)
    assert sink.reopened == 1 and stuck.closed
    assert sink.consumer() is fresh
    assert "reopening the consumer" in caplog.text and "events" in caplog.text


def test_an_idle_partition_is_left_alone(monkeypatch):
    idle = StuckConsumer(end=3, position=3)  # nothing waits: polls are rightly empty
    sink = Clocked(AnalyticsSettings(sink_stall_s=5), NoDatabase(), consumer=idle, fresh=None)
    run_until(sink, idle, monkeypatch, polls=200)
    assert sink.reopened == 0 and not idle.closed and sink.consumer() is idle


def test_the_stall_window_is_a_setting_that_must_be_positive():
    from routing.contract.environ import SettingsError

    with pytest.raises(SettingsError, match="TONGDAI_SINK_STALL_S"):
        AnalyticsSettings(sink_stall_s=0).check()


def test_a_broker_answering_with_no_brokers_is_asked_again_not_fatal():
    """A broker just thawed answered a metadata request with an empty broker list and
    the sink exited (a chaos soak); the answer is to ask again."""
    from kafka.errors import MetadataEmptyBrokerList

    from analytics.sink import Sink

    class Thawing:
        asked = 0

        def partitions_for_topic(self, name):
            self.asked += 1
            if self.asked == 1:
                raise MetadataEmptyBrokerList("brokers=[]")
            return {0}

    consumer = Thawing()
    Sink._await_metadata(consumer, ["tongdai.fs.events.v1"], wait_s=5)
    assert consumer.asked == 2
