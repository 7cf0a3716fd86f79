"""The disk spool: order, bound, crash recovery, nothing lost."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from esl_bridge.spool import Spool, SpoolFull

pytestmark = pytest.mark.bridge


def drain(spool: Spool, batch: int = 7) -> list[bytes]:
    got = []
    while True:
        records = spool.read(batch, timeout=0)
        if not records:
            return got
        got += [r.value for r in records]
        spool.ack(records[-1].position)


def test_records_come_out_in_order_across_segments(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1000)
    values = [f"event-{i}".encode() * 5 for i in range(500)]
    for v in values:
        spool.append("t", b"acme", v)
    assert drain(spool) == values
    assert spool.pending_bytes == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1, "confirmed segments are deleted"


def test_unacked_records_survive_a_restart_and_acked_ones_do_not(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    for i in range(50):
        spool.append("topic.a", f"k{i % 3}".encode(), f"v{i}".encode())
    first = spool.read(20)
    spool.ack(first[-1].position)
    spool.read(10)  # read but never confirmed: must come back
    spool.close()

    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    rest = []
    while batch := again.read(100, timeout=0):
        rest += batch
        again.ack(batch[-1].position)
    assert [r.value for r in rest] == [f"v{i}".encode() for i in range(20, 50)]
    assert {r.topic for r in rest} == {"topic.a"}
    assert rest[0].key == b"k2"


def test_a_torn_last_record_is_cut_off(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append("t", b"k", f"v{i}".encode())
    spool.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    seg.write_bytes(seg.read_bytes()[:-3])  # power loss in the middle of the last write
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert drain(again) == [b"v0", b"v1", b"v2", b"v3"]
    again.append("t", b"k", b"v5")
    assert drain(again) == [b"v5"]


def test_rewind_resends_from_the_last_confirmed_record(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(10):
        spool.append("t", b"k", bytes([i]))
    batch = spool.read(4)
    spool.ack(batch[1].position)  # only two of four confirmed, then the send failed
    spool.rewind()
    assert [r.value for r in spool.read(100)] == [bytes([i]) for i in range(2, 10)]


def test_the_bound_refuses_input_until_space_is_confirmed(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=200)
    with pytest.raises(SpoolFull, match="bound 200"):
        for _ in range(100):
            spool.append("t", b"k", b"x" * 20)
    written = drain(spool)
    assert len(written) >= 5
    spool.append("t", b"k", b"after")  # room again
    assert drain(spool) == [b"after"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), max_size=60),
       st.integers(min_value=64, max_value=2000), st.integers(min_value=1, max_value=9))
def test_any_sequence_round_trips(tmp_path_factory, values, segment_bytes, batch):
    spool = Spool(tmp_path_factory.mktemp("s"), max_bytes=1 << 20, segment_bytes=segment_bytes)
    for v in values:
        spool.append("t", b"key", v)
    assert drain(spool, batch) == values
