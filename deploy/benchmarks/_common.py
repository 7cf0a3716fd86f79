"""Helpers the benchmarks share (a module name starting with `_` is not a benchmark)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_log(proc: subprocess.Popen, path: str, marker: str, timeout: float = 90) -> None:
    """Wait until the process's log shows `marker`; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: exited {proc.returncode}; its log ends:\n"
                               f"{_tail(path)}")
        with open(path, errors="replace") as f:
            if marker in f.read():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{path}: no {marker!r} after {timeout} s; its log ends:\n"
                       f"{_tail(path)}")


def _tail(path: str, size: int = 3000) -> str:
    with open(path, errors="replace") as f:
        return f.read()[-size:]


def end_offsets(bootstrap: str, names: list[str]) -> dict:
    """The current end offset of every partition of `names`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    tps = [TopicPartition(n, p) for n in names for p in (consumer.partitions_for_topic(n) or ())]
    ends = consumer.end_offsets(tps)
    consumer.close()
    return ends


@contextlib.contextmanager
def bench_stack(kind: str, folder: Path, say: Callable[[str], None]) -> Iterator[tuple[Any, list]]:
    """The Kafka and ClickHouse a benchmark runs on, with their healths (pids).

    "private": servers of this benchmark alone, in folder/stack, stopped at the end. Topic
    names are fixed and every worker routes every tenant it sees, so a worker of another
    deployment on a shared broker routes the benchmark's calls too, without its
    configuration: it hangs them up with "queue support is not configured" (199 of 471
    callers of `bench acd --quick`, measured). "shared": the running local stack (started
    if it is not running)."""
    from deploy.local import settings as stack_settings
    from deploy.local import stack

    shared = stack_settings.load()
    if kind == "shared":
        health = stack.status(shared)
        if not all(h.healthy for h in health):
            say("starting the local stack (Kafka, ClickHouse) ...")
            health = stack.up(shared, log=lambda m: say("  " + m))
        yield shared, health
        return
    (folder / "stack").mkdir(parents=True)
    if (shared.root / "kafka-dist").exists():  # the jars, not a second download
        os.symlink(shared.root / "kafka-dist", folder / "stack" / "kafka-dist")
    settings = dataclasses.replace(
        shared, stack_dir=str(folder / "stack"), kafka_port=free_port(),
        kafka_controller_port=free_port(), clickhouse_tcp_port=free_port(),
        clickhouse_http_port=free_port(), kafka_heap_mb=512)
    say(f"starting a private Kafka and ClickHouse in {folder / 'stack'} ...")
    try:
        health = stack.up(settings, log=lambda m: say("  " + m))
        # The product's topics with their partitions before any client writes: a producer
        # first would have the broker create a topic with one partition.
        from streams.app import ensure_topics
        from streams.settings import load as worker_settings

        ensure_topics(settings.kafka_bootstrap, worker_settings({}).topic_partitions)
        yield settings, health
    finally:
        stack.down(settings, log=lambda m: say("  " + m))  # ours: nothing left running


def _ulaw(sample: int) -> int:
    """G.711 mu-law of a 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_pcap(path: Path, seconds: float, hz: int = 440) -> Path:
    """A caller's voice for SIPp's play_pcap_audio: RTP PCMU (payload 0, what the callers'
    SDP offers), 20 ms packets of a `hz` tone, `seconds` long (the packaged g711a.pcap is
    PCMA). Loud enough for voicemail's silence detection (which ends a silent message
    before its minimum length, and the message is then not kept)."""
    import math

    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(int(seconds * 50)):
        payload = bytes(_ulaw(int(8000 * math.sin(2 * math.pi * hz * (n * 160 + i) / 8000)))
                        for i in range(160))
        rtp = struct.pack(">BBHII", 0x80, 0, (1000 + n) & 0xFFFF, 160 * n, 0x5EED) + payload
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        usec = n * 20000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return path
