"""Settings of the API (`tongdai api`, `tongdai config apply`).

`load(environ)` reads TONGDAI_* variables (routing.contract.environ), checks them and
returns a frozen dataclass. The token secret is required and never printed: `repr` hides it.
ClickHouse settings use the same variable names as analytics (TONGDAI_CLICKHOUSE_*), so
one environment file serves the sink and the API.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from routing.contract import topics
from routing.contract.edge import check_scheduling
from routing.contract.environ import SettingsError, env_name, from_environ, port, positive

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
AUDIT_TOPIC = "tongdai.audit.v1"
NOTES_TOPIC = "tongdai.call_notes.v1"
WEBHOOKS_TOPIC = "tongdai.webhook_deliveries.v1"
MIN_SECRET_CHARS = 32


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the API listens, how tokens are signed, where Kafka and ClickHouse are."""

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 2
    # Each open SSE stream (wallboard, agent pop-ups) holds one thread for up to
    # api_sse_max_s: size threads for streams plus request concurrency.
    api_threads: int = 8
    api_timeout_s: int = 60
    # HMAC key of the API tokens (itsdangerous). Required: `tongdai api token` and the
    # server must share it. At least 32 characters.
    api_token_secret: str = ""
    # Default lifetime of a token (a working day and a half); at most 30 days.
    api_token_ttl_s: int = 12 * 3600
    # Basic-auth password FreeSWITCH's mod_xml_curl sends (user "freeswitch"); empty
    # disables the /freeswitch/xml endpoint.
    api_xml_curl_password: str = ""
    # The FreeSWITCH nodes' recordings folder as this API sees it (shared storage; the
    # switch's `tongdai_recordings_dir`): <dir>/<tenant>/<date>/<call id>.wav. Empty:
    # recordings are listed, not played.
    api_recordings_dir: str = ""
    # The FreeSWITCH nodes' sounds folder as this API sees it (`$${sounds_dir}`): `tongdai
    # config apply` refuses a menu or queue whose sound is not there. Empty: not checked.
    api_sounds_dir: str = ""
    # The browser softphone's SIP over secure WebSocket: FreeSWITCH's wss binding as the
    # agents' browsers reach it (e.g. wss://pbx.example.vn:7443; fs-conf's
    # TONGDAI_FS_WSS_PORT). Empty: no softphone (POST /softphone answers 404).
    api_softphone_wss_url: str = ""
    # How long a softphone session's SIP credentials live at most (never past its token).
    api_softphone_ttl_s: int = 12 * 3600
    api_sse_max_s: float = 300.0  # an SSE response ends after this; clients reconnect
    # Open event streams per user and per process (0: API_THREADS - 2, so streams never
    # take the last threads requests need).
    api_sse_max_per_user: int = 3
    api_sse_max_streams: int = 0
    api_page_max: int = 500
    api_export_max_rows: int = 100000
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Topics (overridable so tests can run on their own topics).
    config_topic: str = topics.CONFIG
    commands_topic: str = topics.CC_COMMANDS
    events_topic: str = topics.CC_EVENTS
    live_topic: str = topics.LIVE
    audit_topic: str = AUDIT_TOPIC
    notes_topic: str = NOTES_TOPIC
    webhooks_topic: str = WEBHOOKS_TOPIC
    # Webhooks: every API process joins this consumer group on the events topic, so each
    # event is sent by one process; attempts with back-off 1, 2, 4, ... s.
    api_webhooks_enabled: bool = True
    api_webhook_group: str = "tongdai-api-webhooks"
    api_webhook_attempts: int = 5
    api_webhook_backoff_s: float = 1.0
    api_webhook_timeout_s: float = 3.0
    # ClickHouse (reports, call search, call detail); the same variables as analytics.
    reports_enabled: bool = True
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 9000
    clickhouse_database: str = "tongdai"
    clickhouse_user: str = "default"
    clickhouse_password: str = ""
    report_timezone: str = "Asia/Ho_Chi_Minh"
    # A report query that takes longer is stopped (503): a frozen ClickHouse never holds
    # one of the API's threads for longer than this (plus a second).
    api_report_timeout_s: float = 5.0
    # How long a health probe waits for Kafka or ClickHouse to answer (every 2 s).
    api_probe_timeout_s: float = 2.0
    # How long a command request waits for Kafka to store it; past that it is answered
    # `pending` (it is queued and applies when Kafka takes it), never "timed out".
    api_publish_wait_s: float = 5.0
    log_level: str = "INFO"
    # `realtime`: scheduled as FreeSWITCH schedules itself (routing.contract.edge.schedule),
    # so a busy machine does not starve the call path behind the switch's media threads;
    # round-robin at `scheduling_priority` (1: beside the switch's call threads).
    scheduling: str = "normal"
    scheduling_priority: int = 1

    def check(self) -> None:
        check_scheduling(self.scheduling, self.scheduling_priority)
        port("api_port", self.api_port)
        for name in ("api_workers", "api_threads", "api_timeout_s", "api_token_ttl_s",
                     "api_sse_max_s", "api_page_max", "api_export_max_rows",
                     "api_sse_max_per_user", "api_webhook_attempts",
                     "api_webhook_backoff_s", "api_webhook_timeout_s", "api_report_timeout_s",
                     "api_probe_timeout_s", "api_publish_wait_s", "api_softphone_ttl_s"):
            positive(name, getattr(self, name))
        if self.api_token_ttl_s > 30 * 86400:
            raise SettingsError(f"{env_name('api_token_ttl_s')}={self.api_token_ttl_s}: at "
                                f"most {30 * 86400} (30 days)")
        if len(self.api_token_secret) < MIN_SECRET_CHARS:
            raise SettingsError(f"{env_name('api_token_secret')}: required, at least "
                                f"{MIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 32`)")
        port("clickhouse_port", self.clickhouse_port)
        if self.api_softphone_wss_url and not re.match(r"^wss?://[^\s/]+(/\S*)?$",
                                                       self.api_softphone_wss_url):
            raise SettingsError(f"{env_name('api_softphone_wss_url')}="
                                f"{self.api_softphone_wss_url!r}: must be a wss:// (or ws://) URL")
        if not _IDENT.match(self.clickhouse_database):
            raise SettingsError(f"{env_name('clickhouse_database')}={self.clickhouse_database!r}: "
                                f"must be a plain identifier (letters, digits, _)")

    @property
    def sse_max_streams(self) -> int:
        return self.api_sse_max_streams or max(1, self.api_threads - 2)

    def __repr__(self) -> str:  # secrets stay out of logs
        return (f"ApiSettings(bind={self.api_host}:{self.api_port}, workers={self.api_workers}"
                f"x{self.api_threads}, kafka={self.kafka_bootstrap}, clickhouse="
                f"{self.clickhouse_host}:{self.clickhouse_port}/{self.clickhouse_database})")

    __str__ = __repr__


def load(environ: Mapping[str, str] | None = None) -> ApiSettings:
    """The API's settings from `environ` (default: the process environment)."""
    return from_environ(ApiSettings, os.environ if environ is None else environ)
