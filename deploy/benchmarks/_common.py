"""Helpers the benchmarks share (a module name starting with `_` is not a benchmark)."""
from __future__ import annotations

import os
import socket
import subprocess
import time


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
