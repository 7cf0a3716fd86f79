"""`tongdai worker`: run a routing worker."""
from __future__ import annotations

import logging
import sys
import time

from . import settings as worker_settings


def main(argv: list[str]) -> int:
    try:
        settings = worker_settings.load()
    except ValueError as exc:
        print(f"tongdai worker: {exc}", file=sys.stderr)
        return 2
    from routing.contract import topics
    from routing.contract.edge import logging_config, schedule, setup_logging

    setup_logging(settings.log_level)
    schedule(settings.scheduling, settings.scheduling_priority)

    from .app import create_app, ensure_topics, start_group_at_end

    def prepare() -> None:
        ensure_topics(settings.kafka_bootstrap, settings.topic_partitions,
                      settings.topic_replication)
        if settings.start_from == "latest":
            # "From now on" means from this moment, not from when the partitions get
            # assigned (seconds later): what is sent after "Ready" is never skipped.
            start_group_at_end(settings.kafka_bootstrap, settings.app_id,
                               [topics.FS_ROUTING, topics.CC_COMMANDS])
        if settings.config_from == "latest":  # the config forwarder's own group, likewise
            start_group_at_end(settings.kafka_bootstrap, f"{settings.app_id}-config",
                               [topics.CONFIG])

    log = logging.getLogger("streams.cli")
    deadline = time.monotonic() + settings.kafka_wait_s
    delay = 0.5
    while True:
        try:
            prepare()
            break
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                print(f"tongdai worker: Kafka at {settings.kafka_bootstrap} was not usable "
                      f"within {settings.kafka_wait_s:g} s ({reason})", file=sys.stderr)
                return 2
            log.warning("Kafka at %s not ready (%s); trying again in %.1f s",
                        settings.kafka_bootstrap, reason, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    app = create_app(settings)
    # Faust's worker configures logging again when it starts: the same JSON lines.
    app.conf.logging_config = logging_config(settings.log_level)
    level = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}.get(
        settings.log_level.upper(), "info")
    sys.argv = ["tongdai worker", "worker", "-l", level, "--without-web", *argv]
    app.main()
    return 0
