"""`tongdai worker`: run a routing worker."""
from __future__ import annotations

import logging
import sys

from . import settings as worker_settings


def main(argv: list[str]) -> int:
    try:
        settings = worker_settings.load()
    except ValueError as exc:
        print(f"tongdai worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from routing.contract import topics

    from .app import create_app, ensure_topics, start_group_at_end

    try:
        ensure_topics(settings.kafka_bootstrap, settings.topic_partitions)
        if settings.start_from == "latest":
            # "From now on" means from this moment, not from when the partitions get
            # assigned (seconds later): what is sent after "Ready" is never skipped.
            start_group_at_end(settings.kafka_bootstrap, settings.app_id,
                               [topics.FS_ROUTING, topics.CC_COMMANDS])
        if settings.config_from == "latest":  # the config forwarder's own group, likewise
            start_group_at_end(settings.kafka_bootstrap, f"{settings.app_id}-config",
                               [topics.CONFIG])
    except Exception as exc:
        print(f"tongdai worker: Kafka at {settings.kafka_bootstrap} is not reachable "
              f"({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    app = create_app(settings)
    level = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}.get(
        settings.log_level.upper(), "info")
    sys.argv = ["tongdai worker", "worker", "-l", level, "--without-web", *argv]
    app.main()
    return 0
