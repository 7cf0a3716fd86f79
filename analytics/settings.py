"""Settings of the analytics deployables (`tongdai sink`, `tongdai db`)."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from routing.contract import topics
from routing.contract.environ import SettingsError, env_name, from_environ, port, positive

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class AnalyticsSettings:
    """Where ClickHouse and Kafka are, and how the sink batches and retries."""

    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 9000
    clickhouse_database: str = "tongdai"
    clickhouse_user: str = "default"
    clickhouse_password: str = ""
    # Where `tongdai db bi-users` writes the tenants' users: the server's users.d folder
    # (`tongdai` gives the local stack's when the server is the local stack's).
    clickhouse_users_d: str = "/etc/clickhouse-server/users.d"
    kafka_bootstrap: str = "127.0.0.1:9092"
    deployment: str = "local"  # one sink consumer group per deployment
    sink_topics: tuple[str, ...] = (topics.FS_EVENTS, topics.CC_EVENTS)
    sink_batch_rows: int = 20000  # flush when this many records are buffered ...
    sink_batch_s: float = 1.0  # ... or when the oldest buffered record is this old
    sink_retry_min_s: float = 0.5  # ClickHouse down: first retry after this long,
    sink_retry_max_s: float = 15.0  # doubling up to this
    # Records waiting in an assigned partition that polls have not returned for this long:
    # the consumer is reopened (kafka-python 3 can leave a partition stuck after a rebalance).
    sink_stall_s: float = 30.0
    sink_max_open_calls: int = 50000  # calls kept in memory (others reload from ClickHouse)
    sink_keep_final_calls: int = 5000  # ended calls kept for late events
    short_abandon_ms: int = 5000  # fallback when the router's verdict is missing
    report_timezone: str = "Asia/Ho_Chi_Minh"
    log_level: str = "INFO"

    def check(self) -> None:
        port("clickhouse_port", self.clickhouse_port)
        if not _IDENT.match(self.clickhouse_database):
            raise SettingsError(f"{env_name('clickhouse_database')}={self.clickhouse_database!r}: "
                                f"must be a plain identifier (letters, digits, _)")
        if not self.sink_topics:
            raise SettingsError(f"{env_name('sink_topics')}: name at least one topic")
        for name in ("sink_batch_rows", "sink_batch_s", "sink_retry_min_s", "sink_retry_max_s",
                     "sink_stall_s",
                     "sink_max_open_calls", "sink_keep_final_calls", "short_abandon_ms"):
            positive(name, getattr(self, name))
        if self.sink_retry_max_s < self.sink_retry_min_s:
            raise SettingsError(f"{env_name('sink_retry_max_s')}: must be >= "
                                f"{env_name('sink_retry_min_s')}")

    @property
    def consumer_group(self) -> str:
        return f"tongdai-sink-{self.deployment}"

    def __repr__(self) -> str:  # the password stays out of logs
        return (f"AnalyticsSettings(clickhouse={self.clickhouse_host}:{self.clickhouse_port}/"
                f"{self.clickhouse_database}, kafka={self.kafka_bootstrap}, "
                f"group={self.consumer_group})")


def load(environ: Mapping[str, str] | None = None) -> AnalyticsSettings:
    return from_environ(AnalyticsSettings, os.environ if environ is None else environ)


def connect(settings: AnalyticsSettings):
    """The native-protocol database of these settings."""
    from .db import NativeDatabase

    return NativeDatabase(settings.clickhouse_host, settings.clickhouse_port,
                          settings.clickhouse_database, settings.clickhouse_user,
                          settings.clickhouse_password)
