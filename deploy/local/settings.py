"""Settings of the local stack (Kafka + ClickHouse on this machine)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routing.contract.environ import SettingsError, from_environ, port, positive

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class StackSettings:
    """Where the local stack lives and which loopback ports it takes."""

    stack_dir: str = str(REPO_ROOT / "var" / "stack")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap_mb: int = 1024
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
        positive("start_timeout_s", self.start_timeout_s)
        ports = [self.kafka_port, self.kafka_controller_port, self.clickhouse_tcp_port,
                 self.clickhouse_http_port]
        if len(set(ports)) != len(ports):
            raise SettingsError(f"the stack's ports must differ, got {ports}")

    @property
    def root(self) -> Path:
        return Path(self.stack_dir)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


def load(environ: Mapping[str, str] | None = None) -> StackSettings:
    """Read TONGDAI_* variables (defaults match a plain local checkout)."""
    return from_environ(StackSettings, os.environ if environ is None else environ)
