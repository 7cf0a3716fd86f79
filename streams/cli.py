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
    from .app import create_app, ensure_topics

    try:
        ensure_topics(settings.kafka_bootstrap, settings.topic_partitions)
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
