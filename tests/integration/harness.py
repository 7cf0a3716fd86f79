"""Shared pieces of the end-to-end integration tests: processes and Kafka readers."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from routing.contract import Envelope, decode, deterministic_id, encode, topics


class Reader:
    """Reads the given topics from their current end on, keeping records that match."""

    def __init__(self, bootstrap: str, names: Iterable[str],
                 keep: Callable[[Envelope], bool]) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.keep = keep
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      group_id=None)
        tps = []
        for name in names:
            parts = self.consumer.partitions_for_topic(name) or set(range(8))
            tps += [TopicPartition(name, p) for p in parts]
        self.consumer.assign(tps)
        self.consumer.seek_to_end()
        for tp in tps:
            self.consumer.position(tp)  # resolve "end" now, before anyone writes
        self.records: list[tuple[str, int, bytes, Envelope]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for tp, batch in self.consumer.poll(timeout_ms=200).items():
                for r in batch:
                    env = decode(r.value)
                    if self.keep(env):
                        self.records.append((tp.topic, tp.partition, r.key, env))

    def wait_for(self, predicate: Callable[[list[Envelope]], bool], timeout: float = 30,
                 what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.envelopes()):
                return
            self.poll(0.3)
        raise AssertionError(f"timed out waiting for {what or predicate}; last: "
                             f"{[e.type for e in self.envelopes()][-25:]}")

    def envelopes(self, topic: str | None = None) -> list[Envelope]:
        return [e for t, _, _, e in self.records if topic is None or t == topic]

    def of_type(self, type_: str) -> list[Envelope]:
        return [e for e in self.envelopes() if e.type == type_]

    def close(self) -> None:
        self.consumer.close()


def start_process(kind: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """`tongdai <kind>` as its own process, its output in tmp_path/<kind>.log."""
    log = open(tmp_path / f"{kind}-{uuid.uuid4().hex[:6]}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", kind],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bridge_env(sim, tmp_path: Path, bootstrap: str) -> dict[str, str]:
    return {"TONGDAI_FREESWITCH": f"127.0.0.1:{sim.port}:{sim.password}",
            "TONGDAI_KAFKA_BOOTSTRAP": bootstrap,
            "TONGDAI_SPOOL_DIR": str(tmp_path / "spool"),
            "TONGDAI_ACTUATOR_STATE_DIR": str(tmp_path / "actuator"),
            "TONGDAI_BRIDGE_NAME": f"test-{uuid.uuid4().hex[:8]}",
            "TONGDAI_RECONNECT_MIN_S": "0.2", "TONGDAI_RECONNECT_MAX_S": "1"}


def worker_env(tmp_path: Path, bootstrap: str, app_id: str) -> dict[str, str]:
    return {"TONGDAI_KAFKA_BOOTSTRAP": bootstrap, "TONGDAI_APP_ID": app_id,
            "TONGDAI_WORKER_DATA_DIR": str(tmp_path / f"worker-{app_id}"),
            "TONGDAI_START_FROM": "latest", "TONGDAI_CONFIG_FROM": "latest",
            "TONGDAI_TICK_INTERVAL_S": "0.5"}


def wait_ready(proc: subprocess.Popen, marker: str, timeout: float = 60) -> None:
    """Wait until the process's log shows `marker` (Faust prints "Ready" when it consumes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}:\n"
                                 f"{proc.log_path.read_text()[-3000:]}")
        if marker in proc.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout} s:\n{proc.log_path.read_text()[-3000:]}")


class Publisher:
    """Writes configuration and commands the way the API will."""

    def __init__(self, bootstrap: str, tenant: str) -> None:
        from kafka import KafkaProducer

        self.tenant = tenant
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def _env(self, type_: str, payload: dict, call_id: str | None = None) -> Envelope:
        now = time.time_ns() // 1000
        return Envelope(deterministic_id(type_, self.tenant, now, uuid.uuid4()), type_, 1, now,
                        self.tenant, "api", None, call_id, payload)

    def config(self, kind: str, entity_id: str, data: dict | None) -> None:
        env = self._env("config_changed", {"kind": kind, "entity_id": entity_id, "data": data})
        self.producer.send(topics.CONFIG, key=topics.config_key(self.tenant, kind, entity_id),
                           value=encode(env))

    def command(self, type_: str, **payload) -> None:
        self.producer.send(topics.CC_COMMANDS, key=topics.tenant_key(self.tenant),
                           value=encode(self._env(type_, payload)))

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close()


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports: the sockets stay bound until all are drawn (one closed
    before the next is bound can be handed out again: a CI run drew [52347, 39691, 39691,
    60083] for a stack, which refuses ports that are not distinct)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()

