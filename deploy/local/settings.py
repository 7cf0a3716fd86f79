"""Settings of the local stack (Kafka + ClickHouse on this machine)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routing.contract.environ import (SettingsError, env_name, from_environ, port,
                                      positive)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where the local stack lives and which loopback ports it takes.

    One Kafka broker by default; `kafka_brokers` > 1 (`tongdai stack up --brokers 3`) runs
    a cluster of combined broker+controller nodes whose node i (1-based) listens on
    `kafka_port + 2(i-1)` and `kafka_controller_port + 2(i-1)`: 9092/9093, 9094/9095,
    9096/9097 by default, so the first broker is where a single broker would be.
    """

    stack_dir: str = str(REPO_ROOT / "var" / "stack")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap_mb: int = 1024
    kafka_brokers: int = 1
    # Each node of a cluster: three of them fit beside everything else on 2 cores / 24 GB.
    kafka_cluster_heap_mb: int = 512
    clickhouse_tcp_port: int = 9000
    clickhouse_http_port: int = 8123
    clickhouse_server_bin: str = "clickhouse-server"
    java_bin: str = "java"
    mvn_bin: str = "mvn"
    start_timeout_s: float = 60.0

    def check(self) -> None:
        for name in ("kafka_port", "kafka_controller_port", "clickhouse_tcp_port",
                     "clickhouse_http_port"):
            port(name, getattr(self, name))
        positive("kafka_heap_mb", self.kafka_heap_mb)
        positive("kafka_cluster_heap_mb", self.kafka_cluster_heap_mb)
        positive("start_timeout_s", self.start_timeout_s)
        if not 1 <= self.kafka_brokers <= 9:
            raise SettingsError(f"{env_name('kafka_brokers')}={self.kafka_brokers!r}: "
                                f"must be 1 to 9")
        nodes = [self.kafka_node_ports(i) for i in range(1, self.kafka_brokers + 1)]
        for client, controller in nodes[1:]:
            port("kafka_port", client)
            port("kafka_controller_port", controller)
        ports = [p for pair in nodes for p in pair] + [self.clickhouse_tcp_port,
                                                      self.clickhouse_http_port]
        if len(set(ports)) != len(ports):
            raise SettingsError(f"the stack's ports must differ, got {ports}")

    @property
    def root(self) -> Path:
        return Path(self.stack_dir)

    def kafka_node_ports(self, node: int) -> tuple[int, int]:
        """(client, controller) port of node `node` (1-based) of the Kafka cluster."""
        step = 2 * (node - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    @property
    def kafka_replication(self) -> int:
        """Replicas of each partition: 1 on one broker, 3 on a cluster of 3 or more."""
        return min(3, self.kafka_brokers)

    @property
    def kafka_min_insync(self) -> int:
        """Replicas that must have a record before `acks=all` confirms it: with 3, one
        broker may be lost without losing an acknowledged record or refusing writes."""
        return max(1, self.kafka_replication - 1)

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker's client address, comma-separated (what TONGDAI_KAFKA_BOOTSTRAP
        takes): a client that starts while one broker is down still finds the others."""
        return ",".join(f"127.0.0.1:{self.kafka_node_ports(i)[0]}"
                        for i in range(1, self.kafka_brokers + 1))


def load(environ: Mapping[str, str] | None = None) -> StackSettings:
    """Read TONGDAI_* variables (defaults match a plain local checkout)."""
    return from_environ(StackSettings, os.environ if environ is None else environ)
