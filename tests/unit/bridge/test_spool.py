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


def cursor_of(directory: Path) -> tuple[int, int]:
    seg, off = (directory / "cursor").read_text().split()
    return int(seg), int(off)


def test_the_cursor_file_is_saved_at_most_every_interval_and_a_crash_only_repeats(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, cursor_every_s=3600)
    for i in range(10):
        spool.append("t", b"k", f"v{i}".encode())
    for _ in range(10):  # confirmed one by one, as a sender at low load does
        spool.ack(spool.read(1)[-1].position)
    assert not (tmp_path / "cursor").exists(), "no rename per confirmed record"
    spool.append("t", b"k", b"v10")
    spool.flush()  # the sender's next read would; then a crash, without close. Everything comes back, in order, the confirmed ones as duplicates
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert drain(again) == [f"v{i}".encode() for i in range(11)]


def test_the_cursor_is_saved_when_the_sender_is_idle_and_due_and_on_close(tmp_path: Path,
                                                                           monkeypatch):
    import esl_bridge.spool as spool_module

    clock = [1000.0]
    monkeypatch.setattr(spool_module.time, "monotonic", lambda: clock[0])
    spool = Spool(tmp_path, max_bytes=1 << 20, cursor_every_s=0.2)
    for i in range(4):
        spool.append("t", b"k", f"v{i}".encode())
    batch = spool.read(2)
    spool.ack(batch[-1].position)
    rest = spool.read(10)
    spool.ack(rest[-1].position)
    # idle at once after the confirmation (a sender at moderate load is, after every
    # batch): not yet, else a rename per batch again
    assert spool.read(10, timeout=0) == []
    assert not (tmp_path / "cursor").exists()
    clock[0] += 0.2
    assert spool.read(10, timeout=0) == []  # idle, and the interval has passed: saved
    assert cursor_of(tmp_path) == (rest[-1].position.segment, rest[-1].position.offset)
    spool.append("t", b"k", b"v4")
    spool.ack(spool.read(1)[-1].position)
    spool.close()
    assert drain(Spool(tmp_path, max_bytes=1 << 20)) == []


def test_append_never_waits_for_the_cursor_file(tmp_path: Path, monkeypatch):
    """The bridge's event reader appends while the sender writes the cursor file: a slow
    disk under the sender must not hold the reader (it did, under the spool's lock)."""
    import threading

    import esl_bridge.spool as spool_module

    spool = Spool(tmp_path, max_bytes=1 << 20, cursor_every_s=0)
    spool.append("t", b"k", b"v0")
    first = spool.read(1)
    renaming, release = threading.Event(), threading.Event()
    real_replace = spool_module.os.replace

    def slow_replace(src, dst):
        renaming.set()
        release.wait(10)
        real_replace(src, dst)

    monkeypatch.setattr(spool_module.os, "replace", slow_replace)
    sender = threading.Thread(target=spool.ack, args=(first[-1].position,))
    sender.start()
    assert renaming.wait(10)
    appended = threading.Thread(target=spool.append, args=("t", b"k", b"v1"))
    appended.start()
    appended.join(2)
    finished = not appended.is_alive()
    release.set()
    sender.join(10)
    appended.join(10)
    assert finished, "append waited for the cursor file's rename"
    assert cursor_of(tmp_path) == (first[-1].position.segment, first[-1].position.offset)
    assert [r.value for r in spool.read(10, timeout=0)] == [b"v1"]


def test_a_confirmed_segment_is_deleted_at_once(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100, cursor_every_s=3600)
    for i in range(30):
        spool.append("t", b"k", b"x" * 40)
    assert len(list(tmp_path.glob("*.seg"))) > 5
    drain(spool, batch=3)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert cursor_of(tmp_path)[0] == int(sorted(tmp_path.glob("*.seg"))[0].stem)


def test_a_segment_larger_than_one_read_is_read_to_its_end(tmp_path: Path, monkeypatch):
    import esl_bridge.spool as spool_module

    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)
    values = [bytes([i]) * 40 for i in range(40)]
    for v in values:
        spool.append("t", b"k", v)
    frame = 8 + 2 + 1 + 2 + 1 + 40
    monkeypatch.setattr(spool_module, "READ_MAX", frame * 3)  # reads end on a frame boundary
    assert drain(spool, batch=100) == values
