"""Settings of the routing worker (`tongdai worker`)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from routing.contract.edge import check_scheduling
from routing.contract.environ import SettingsError, env_name, from_environ, positive

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    app_id: str = "tongdai-router"  # the consumer group and the prefix of changelog topics
    worker_data_dir: str = str(REPO_ROOT / "var" / "worker")
    tick_interval_s: float = 1.0
    # How soon a change reaches the supervisors' live view (the wallboard): views of
    # tenants that changed are published at most this often (event-to-screen p95 ≈ this
    # plus ~50 ms; `tongdai bench freshness`).
    live_interval_s: float = 0.25
    # Where a new consumer group starts: "earliest" rebuilds state from the whole log (a new
    # deployment); "latest" skips history (tests, a deliberate fresh start).
    start_from: str = "earliest"
    # Where a new group of the config forwarder starts: "earliest" (every entity, once) or
    # "latest" (tests that configure their tenants after the worker started).
    config_from: str = "earliest"
    topic_partitions: int = 8
    # Replicas of the topics the worker creates (product topics, changelogs): 1 on one
    # broker; 3 on a cluster with min.insync.replicas 2 (deploy/SCALING.md).
    topic_replication: int = 1
    # The longest a worker's fetch waits at the broker for new records (Faust's own is
    # 1.5 s, which delayed routing by up to that much: see streams.app._transport_class).
    fetch_wait_ms: int = 20
    # How long the worker keeps trying to reach Kafka (create topics, pin a new group's
    # start) before it gives up with an error: a broker that is still starting is waited for.
    kafka_wait_s: float = 60.0
    log_level: str = "INFO"
    # `realtime`: scheduled as FreeSWITCH schedules itself (routing.contract.edge.schedule),
    # so a busy machine does not starve the call path behind the switch's media threads;
    # round-robin at `scheduling_priority` (1: beside the switch's call threads).
    scheduling: str = "normal"
    scheduling_priority: int = 1

    def check(self) -> None:
        check_scheduling(self.scheduling, self.scheduling_priority)
        positive("tick_interval_s", self.tick_interval_s)
        positive("live_interval_s", self.live_interval_s)
        positive("kafka_wait_s", self.kafka_wait_s)
        positive("fetch_wait_ms", self.fetch_wait_ms)
        for name in ("start_from", "config_from"):
            if getattr(self, name) not in ("earliest", "latest"):
                raise SettingsError(f"{env_name(name)}={getattr(self, name)!r}: "
                                    f"must be earliest or latest")
        positive("topic_partitions", self.topic_partitions)
        positive("topic_replication", self.topic_replication)


def load(environ: Mapping[str, str] | None = None) -> WorkerSettings:
    return from_environ(WorkerSettings, os.environ if environ is None else environ)
