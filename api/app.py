"""The composition root: `create_app(settings)` builds every service once and wires them.

Nothing else constructs services; resources reach them through `rest.services()`
(`app.extensions["tongdai"]`). Kafka followers start here (per process: gunicorn forks
first, then each worker calls the factory, so threads and clients are never shared
across a fork).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify

from . import errors
from .audit.services import AuditLog
from .auth import Principal, Tokens
from .bus import Bus, KafkaBus, fan_out
from .config.services import ConfigService
from .config.view import ConfigView
from .errors import Unauthorized
from .live.services import LiveView
from .streams import StreamSlots, bp as streams_bp
from .webhooks.http import bp as webhooks_bp
from .webhooks.services import DeliveryLog, GroupConsumer, WebhookSender
from .popup.services import PopupService, lookup
from .reports.services import ReportService
from .settings import ApiSettings
from .agents.services import AgentService, RecentCalls
from .agents.http import bp as agents_bp
from .audit.http import bp as audit_bp
from .config.http import bp as config_bp
from .freeswitch.http import bp as freeswitch_bp
from .live.http import bp as live_bp
from .openapi import bp as openapi_bp
from .popup.http import bp as popup_bp
from .reports.http import bp as reports_bp
from .web import bp as web_bp
from .health import Health, clickhouse_ask, kafka_ask
from .notes.http import bp as notes_bp
from .notes.services import Notes
from .monitor.http import bp as monitor_bp
from .monitor.services import CallsInProgress, MonitorService
from .softphone.http import bp as softphone_bp
from .softphone.services import SoftphoneService, live_a1_hash

log = logging.getLogger("tongdai.api")


class Services:
    """Everything a request may need, built once per process."""

    def __init__(self, settings: ApiSettings, bus: Bus,
                 connect_db: Callable[[], Any] | None) -> None:
        self.settings = settings
        self.bus = bus
        self.tokens = Tokens(settings.api_token_secret, settings.api_token_ttl_s)
        self.view = ConfigView()
        self.audit = AuditLog(bus, settings.audit_topic)
        self.config = ConfigService(self.view, bus, settings.config_topic, self.audit,
                                    self.tokens)
        self.live = LiveView()
        self.recent_calls = RecentCalls()
        self.agents = AgentService(self.view, bus, settings.commands_topic, self.live,
                                   self.recent_calls, self.audit, settings.api_publish_wait_s)
        self.popup = PopupService(self.view, self.live)
        self.notes = Notes(bus, settings.notes_topic)
        self.calls = CallsInProgress()
        self.monitor = MonitorService(self.view, self.calls, self.live, self.audit, bus,
                                      settings.commands_topic)
        self.softphone = SoftphoneService(self.view, self.config, bus, settings.config_topic,
                                          self.audit, self.agents.own_agent,
                                          settings.api_softphone_wss_url,
                                          settings.api_softphone_ttl_s)
        self.reports = ReportService(connect_db, self.view, settings.report_timezone, self.notes)
        self.streams = StreamSlots(settings.api_sse_max_per_user, settings.sse_max_streams)
        self.webhook_log = DeliveryLog(bus, settings.webhooks_topic)
        self.webhooks = WebhookSender(self.view, self.webhook_log, self.lookup,
                                      settings.api_webhook_attempts,
                                      settings.api_webhook_backoff_s,
                                      settings.api_webhook_timeout_s)
        self._webhook_consumer: GroupConsumer | None = None
        self.health = Health()
        self._connect_db = connect_db

    def start(self) -> None:
        s = self.settings
        if isinstance(self.bus, KafkaBus):
            self.health.add("kafka", kafka_ask(s.kafka_bootstrap, s.api_probe_timeout_s))
        if self._connect_db is not None:
            self.health.add("clickhouse", clickhouse_ask(self._connect_db))
        self.bus.follow(s.config_topic, self.view.apply, from_start=True)
        self.bus.follow(s.audit_topic, self.audit.apply, from_start=True)
        self.bus.follow(s.live_topic, self.live.apply, from_start=True)
        self.bus.follow(s.notes_topic, self.notes.apply, from_start=True)
        # The switch's events are the busiest topic (every leg's every event): one
        # follower decodes each once for all the views that read it.
        self.bus.follow(s.events_topic, fan_out(s.events_topic, self.popup.apply,
                                                self.calls.apply, self.recent_calls.apply,
                                                self.audit.apply_correction),
                        from_start=False)
        self.bus.follow(s.webhooks_topic, self.webhook_log.apply, from_start=True)
        if not s.api_webhooks_enabled:
            return
        if isinstance(self.bus, KafkaBus):  # one process of the group sends each event
            self._webhook_consumer = GroupConsumer(self.bus.bootstrap, s.events_topic,
                                                   s.api_webhook_group, self.webhooks.handle)
            self._webhook_consumer.start()
        else:  # the in-memory bus of unit tests: this is the only process
            self.bus.follow(s.events_topic, self.webhooks.handle, from_start=False)

    def authorize(self, token: str) -> Principal:
        who = self.tokens.verify(token)
        if not self.config.allowed(who):
            raise Unauthorized("token revoked or user disabled")
        return who

    def authorize_ticket(self, ticket: str, path: str) -> Principal:
        """A stream ticket stands for its token: the token's revocation applies to it."""
        who = self.tokens.verify_ticket(ticket, path)
        if not self.config.allowed(who):
            raise Unauthorized("token revoked or user disabled")
        return who

    def audit_monitoring(self, tenant: str, extension: str, call_id: str, mode: str,
                         agent_id: str) -> None:
        """Audit entry of a supervisor phone joining a call (listen/whisper/barge)."""
        who = Principal(tenant, "supervisor", f"ext:{extension}", "xml_curl", 0)
        self.audit.record(who, f"call.monitor.{mode}", f"call/{call_id}",
                          {"agent_id": agent_id, "extension": extension, "via": "phone"})

    def softphone_a1(self, tenant: str, extension: str) -> str | None:
        """The a1-hash of the extension's live browser softphone session (mod_xml_curl)."""
        import time

        return live_a1_hash(self.view, tenant, extension, time.time(), self.config.allowed)

    def lookup(self, tenant: str, number: str) -> list[dict[str, Any]]:
        return lookup(self.view, tenant, number)


def _connect_db(settings: ApiSettings) -> Callable[[], Any] | None:
    """Report queries never hold a thread on a frozen ClickHouse: the server stops a query
    after api_report_timeout_s, and the socket gives up a second later if it never
    answers at all (a 503 to the client)."""
    if not settings.reports_enabled:
        return None
    try:
        from analytics.db import NativeDatabase
    except ImportError:
        return None
    limit = settings.api_report_timeout_s
    return lambda: NativeDatabase(settings.clickhouse_host, settings.clickhouse_port,
                                  settings.clickhouse_database, settings.clickhouse_user,
                                  settings.clickhouse_password,
                                  connect_timeout=min(3.0, limit),
                                  send_receive_timeout=limit + 1,
                                  settings={"max_execution_time": int(max(1, limit))})


def create_app(settings: ApiSettings, bus: Bus | None = None,
               connect_db: Callable[[], Any] | None | str = "settings") -> Flask:
    """The Flask app. `bus` defaults to Kafka; `connect_db` to ClickHouse from settings."""
    app = Flask("tongdai.api")
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    services = Services(settings, bus or KafkaBus(settings.kafka_bootstrap),
                        _connect_db(settings) if connect_db == "settings" else connect_db)
    app.extensions["tongdai"] = services
    errors.register(app)

    for bp in (config_bp, agents_bp, live_bp, reports_bp, notes_bp, audit_bp, freeswitch_bp,
               popup_bp, monitor_bp, softphone_bp, streams_bp, webhooks_bp, openapi_bp, web_bp):
        app.register_blueprint(bp)

    @app.get("/api/v1/health")
    def health():
        """Liveness and readiness (no token: load balancers call it). Ready means the
        views are caught up and Kafka answers: without it no command can be taken. A
        ClickHouse that does not answer only takes the reports away (`degraded`)."""
        deps = services.health.status()
        caught_up = services.bus.caught_up()
        kafka_ok = deps.get("kafka", {"ok": True})["ok"]
        ready = caught_up and kafka_ok
        status = ("ok" if all(d["ok"] for d in deps.values()) else "degraded") if ready \
            else ("kafka_unreachable" if not kafka_ok else "catching_up")
        return jsonify({"status": status, "config_records": services.view.applied,
                        "dependencies": deps}), 200 if ready else 503

    services.start()
    log.info("tongdai api ready: %r", settings)
    return app
