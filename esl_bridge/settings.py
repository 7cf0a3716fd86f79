"""Settings of the bridge (`tongdai bridge`)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routing.contract.edge import check_scheduling
from routing.contract.environ import SettingsError, env_name, from_environ, positive

REPO_ROOT = Path(__file__).resolve().parents[1]



@dataclass(frozen=True, slots=True)
class Node:
    """One FreeSWITCH node's event socket. The password is never logged (see __repr__)."""

    host: str
    port: int
    password: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Node({self.address})"


def parse_nodes(specs: tuple[str, ...]) -> tuple[Node, ...]:
    """`host:port:password` entries (the password may itself contain ':')."""
    nodes = []
    for spec in specs:
        host, _, rest = spec.partition(":")
        port, _, password = rest.partition(":")
        if not host or not port.isdigit() or not password:
            shown = f"{host}:{port}:***" if password else spec
            raise SettingsError(f"{env_name('freeswitch')}: {shown!r} must be host:port:password")
        nodes.append(Node(host, int(port), password))
    return tuple(nodes)


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    freeswitch: tuple[str, ...] = ("127.0.0.1:8021:ClueCon",)
    event_format: str = "json"  # json (5x cheaper to parse) | plain
    kafka_bootstrap: str = "127.0.0.1:9092"
    bridge_name: str = "bridge-1"
    spool_dir: str = str(REPO_ROOT / "var" / "bridge" / "spool")
    spool_max_mb: int = 1024
    default_tenant: str = "default"
    # "domain=tenant,..." where a tenant's id is not its SIP domain
    tenant_domains: tuple[str, ...] = ()
    country_code: str = "84"
    heartbeat_timeout_s: float = 45.0  # FreeSWITCH sends one every 20 s
    # Every node's channels are published this often (and at every connect) so that the
    # routers reconcile with what really exists: stranded legs and lost callers are
    # corrected within this time.
    snapshot_interval_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 15.0
    # Each batch is flushed at once (publisher.py), so linger only delays: 0 (produce ->
    # consumed on a local broker p50 2.7 ms; 4.3 ms with 1 ms of linger).
    linger_ms: int = 0
    # A newline to each node this often (connection.Connection._wake_loop): the switch's
    # event socket otherwise holds events up to 20 ms while it sleeps; 0 turns it off.
    esl_wake_ms: float = 2.0
    # The Kafka client that sends: auto (confluent-kafka if installed), confluent-kafka,
    # or kafka-python.
    kafka_client: str = "auto"
    actuator: bool = True
    actuator_state_dir: str = str(REPO_ROOT / "var" / "bridge" / "actuator")
    log_level: str = "INFO"
    # `realtime`: scheduled as FreeSWITCH schedules itself (routing.contract.edge.schedule),
    # so a busy machine does not starve the call path behind the switch's media threads;
    # round-robin at `scheduling_priority` (1: beside the switch's call threads).
    scheduling: str = "normal"
    scheduling_priority: int = 1

    def check(self) -> None:
        check_scheduling(self.scheduling, self.scheduling_priority)
        if self.event_format not in ("plain", "json"):
            raise SettingsError(f"{env_name('event_format')}={self.event_format!r}: "
                                f"must be plain or json")
        if not self.freeswitch:
            raise SettingsError(f"{env_name('freeswitch')}: name at least one node")
        parse_nodes(self.freeswitch)
        self.domain_map
        if self.kafka_client not in ("auto", "confluent-kafka", "kafka-python"):
            raise SettingsError(f"{env_name('kafka_client')}={self.kafka_client!r}: must be "
                                f"auto, confluent-kafka or kafka-python")
        if self.esl_wake_ms < 0:
            raise SettingsError(f"{env_name('esl_wake_ms')}={self.esl_wake_ms!r}: must be 0 "
                                f"(off) or more")
        for name in ("spool_max_mb", "heartbeat_timeout_s", "snapshot_interval_s",
                     "reconnect_min_s",
                     "reconnect_max_s"):
            positive(name, getattr(self, name))

    @property
    def domain_map(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.tenant_domains:
            domain, sep, tenant = item.partition("=")
            if not sep or not domain or not tenant:
                raise SettingsError(f"{env_name('tenant_domains')}: {item!r} must be domain=tenant")
            pairs.append((domain.strip().lower(), tenant.strip()))
        return tuple(pairs)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return parse_nodes(self.freeswitch)

    def __repr__(self) -> str:  # node passwords stay out of logs
        return (f"BridgeSettings(nodes={[n.address for n in self.nodes]}, "
                f"format={self.event_format}, kafka={self.kafka_bootstrap})")


def load(environ: Mapping[str, str] | None = None) -> BridgeSettings:
    return from_environ(BridgeSettings, os.environ if environ is None else environ)
