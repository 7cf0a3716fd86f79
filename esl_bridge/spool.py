"""A bounded, crash-safe, on-disk FIFO of records bound for Kafka.

Every event the bridge publishes is appended here first and sent from here, in order, by
the sender (esl_bridge/publisher.py). When Kafka is down or slow the spool simply grows,
up to `max_bytes`; the read cursor moves only after Kafka confirmed a batch, so a crash or
a broker outage loses nothing. Re-sent records after a crash are exact duplicates with the
same `event_id`, which consumers drop.

Layout: numbered segment files `NNNNNNNNNN.seg` of framed records
(`>II` length and CRC32, then `>H` topic length, topic, `>H` key length, key, value) and a
`cursor` file naming the first record not yet confirmed. A torn record at the end of the
last segment (power loss mid-write) is cut off on open.

The cursor file is rewritten (a rename) at once when a confirmed segment can be deleted
and on close, and otherwise at most every `cursor_every_s`, after a confirmation or while
the sender finds nothing to send: at 10 calls/s a rename per confirmed batch was a quarter
of the sender's CPU. A crash can therefore send again what was confirmed in the last
`cursor_every_s`: duplicates with their `event_id`, which consumers drop, as after any
crash between a send and its confirmation. The file is written outside the lock that
`append` takes: the bridge's event reader never waits for the sender's disk.
"""
from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

_FRAME = struct.Struct(">II")
_LEN = struct.Struct(">H")
READ_MAX = 16 << 20  # bytes the sender reads from a segment at once


class SpoolFull(RuntimeError):
    """The spool reached its bound: the caller must stop taking input (backpressure)."""


@dataclass(frozen=True, slots=True)
class Position:
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    position: Position  # where the NEXT record starts: ack(position) confirms this one
    topic: str
    key: bytes
    value: bytes


class Spool:
    """Append from one thread (the ESL reader), read and ack from another (the sender)."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int,
                 segment_bytes: int = 64 << 20, cursor_every_s: float = 0.2) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one cursor save at a time, outside _lock
        self.readable = threading.Condition(self._lock)
        segments = self._segments()
        self._cursor = self._load_cursor(segments)
        self._write_seg = segments[-1] if segments else self._cursor.segment
        self._recover(self._write_seg)
        self._writer = open(self._path(self._write_seg), "ab")
        self._bytes = sum(self._path(s).stat().st_size for s in self._segments())
        self._bytes -= self._cursor.offset  # confirmed bytes of the cursor's segment
        self._reader: tuple[int, int] | None = None  # (segment, fd) the sender reads
        self._read_pos = self._cursor
        self.cursor_every_s = cursor_every_s
        self._saved = self._cursor  # what the cursor file says
        self._saved_at = time.monotonic()

    # ---- files
    def _path(self, segment: int) -> Path:
        return self.dir / f"{segment:010d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.seg"))

    def _load_cursor(self, segments: list[int]) -> Position:
        try:
            seg, off = (int(x) for x in (self.dir / "cursor").read_text().split())
            return Position(seg, off)
        except (OSError, ValueError):
            return Position(segments[0] if segments else 1, 0)

    def _recover(self, segment: int) -> None:
        """Cut a torn record off the end of the last segment."""
        path = self._path(segment)
        if not path.exists():
            return
        data = path.read_bytes()
        good = 0
        while good + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, good)
            end = good + _FRAME.size + length
            if end > len(data) or zlib.crc32(data[good + _FRAME.size:end]) != crc:
                break
            good = end
        if good != len(data):
            with open(path, "r+b") as f:
                f.truncate(good)

    # ---- writer side
    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet confirmed by Kafka."""
        return self._bytes

    def append(self, topic: str, key: bytes, value: bytes) -> None:
        """Append one record; raises SpoolFull at the bound (nothing is written then)."""
        t = topic.encode()
        body = b"".join((_LEN.pack(len(t)), t, _LEN.pack(len(key)), key, value))
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        with self._lock:
            if self._bytes + len(frame) > self.max_bytes:
                raise SpoolFull(f"spool at {self.dir} holds {self._bytes} unsent bytes "
                                f"(bound {self.max_bytes})")
            if self._writer.tell() >= self.segment_bytes:
                self._writer.close()
                self._write_seg += 1
                self._writer = open(self._path(self._write_seg), "ab")
            self._writer.write(frame)
            self._bytes += len(frame)
            self.readable.notify_all()

    def flush(self) -> None:
        """Push appended records to the OS (the sender reads through the file system)."""
        with self._lock:
            self._writer.flush()

    # ---- reader side
    def read(self, max_records: int, timeout: float | None = None) -> list[Record]:
        """Up to `max_records` records after the last one returned (not the cursor: the
        sender re-reads from the cursor with `rewind` after a failed send)."""
        with self._lock:
            self._writer.flush()
            if self._has_unread():
                return self._read_locked(max_records)
            due = self._save_due()  # nothing to send: a good moment, if one is due
        if due:
            self._save_cursor()
        with self._lock:
            if not self._has_unread():
                self.readable.wait(timeout)
                self._writer.flush()
            return self._read_locked(max_records)

    def _has_unread(self) -> bool:
        return (self._read_pos.segment < self._write_seg
                or self._read_pos.offset < self._writer.tell())

    def _read_fd(self, segment: int) -> int | None:
        """The sender's descriptor of `segment`, kept open while it reads that segment."""
        if self._reader is not None:
            if self._reader[0] == segment:
                return self._reader[1]
            os.close(self._reader[1])
            self._reader = None
        try:
            fd = os.open(self._path(segment), os.O_RDONLY)
        except FileNotFoundError:
            return None
        self._reader = (segment, fd)
        return fd

    def _read_locked(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        pos = self._read_pos
        while len(out) < max_records:
            end = self._writer.tell() if pos.segment == self._write_seg else self._size(pos.segment)
            fd = self._read_fd(pos.segment) if end > pos.offset else None
            data = os.pread(fd, min(end - pos.offset, READ_MAX), pos.offset) if fd is not None else b""
            offset = 0
            while len(out) < max_records and offset + _FRAME.size <= len(data):
                length = _FRAME.unpack_from(data, offset)[0]
                frame_end = offset + _FRAME.size + length
                if frame_end > len(data):
                    break
                body = data[offset + _FRAME.size:frame_end]
                tlen = _LEN.unpack_from(body, 0)[0]
                klen = _LEN.unpack_from(body, 2 + tlen)[0]
                kstart = 4 + tlen
                offset = frame_end
                out.append(Record(Position(pos.segment, pos.offset + offset),
                                  body[2:2 + tlen].decode(), body[kstart:kstart + klen],
                                  body[kstart + klen:]))
            pos = Position(pos.segment, pos.offset + offset)
            if pos.offset >= end and pos.segment < self._write_seg:
                pos = Position(pos.segment + 1, 0)  # a finished segment: go on with the next
                continue
            break
        self._read_pos = pos
        return out

    def rewind(self) -> None:
        """Read again from the last confirmed record (after a failed send)."""
        with self._lock:
            self._read_pos = self._cursor

    def ack(self, position: Position) -> None:
        """Everything before `position` reached Kafka: move the cursor (saved to its file
        at most every `cursor_every_s`, at once when a segment can go), drop old segments."""
        with self._lock:
            if (position.segment, position.offset) <= (self._cursor.segment, self._cursor.offset):
                return
            confirmed = self._distance(self._cursor, position)
            self._cursor = position
            self._bytes -= confirmed
            due = position.segment != self._saved.segment or self._save_due()
        if due:
            self._save_cursor()

    def _save_due(self) -> bool:
        """(under the lock) The cursor moved since it was saved, `cursor_every_s` ago."""
        return (self._saved != self._cursor
                and time.monotonic() - self._saved_at >= self.cursor_every_s)

    def _save_cursor(self) -> None:
        """Write the cursor file, then delete the segments before it; called without the
        lock (`append` never waits for this disk), one save at a time."""
        with self._save_lock:
            with self._lock:
                position, saved = self._cursor, self._saved
            if position == saved:
                return
            tmp = self.dir / "cursor.tmp"
            tmp.write_text(f"{position.segment} {position.offset}\n")
            os.replace(tmp, self.dir / "cursor")
            if position.segment != saved.segment:
                for seg in self._segments():
                    if seg < position.segment:
                        self._path(seg).unlink(missing_ok=True)
            with self._lock:
                self._saved, self._saved_at = position, time.monotonic()

    def _distance(self, a: Position, b: Position) -> int:
        if a.segment == b.segment:
            return b.offset - a.offset
        total = self._size(a.segment) - a.offset
        for seg in range(a.segment + 1, b.segment):
            total += self._size(seg)
        return total + b.offset

    def _size(self, segment: int) -> int:
        try:
            return self._path(segment).stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        self._save_cursor()
        with self._lock:
            if self._reader is not None:
                os.close(self._reader[1])
                self._reader = None
            self._writer.close()
