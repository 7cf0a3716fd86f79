"""What every deployable does at its edges around the contract, written once: the clock in
the contract's unit, dead-letter records, logs as JSON lines that carry the envelope's
``tenant``, ``call_id`` and ``event_id`` as fields, and the process's scheduling class
(`TONGDAI_SCHEDULING`). Ids are the contract's
`deterministic_id` (one implementation with the decisions' ids: `routing.ids`).

Why here: every process (bridge, worker, sink, api, simulator) already imports
`routing.contract`, and these helpers are about its records. It is the one module under
`routing/` that reads the clock and configures logging, so nothing under `routing/` may
import it (tests/unit/test_dependencies.py): ``import routing.contract`` stays pure and the
policy never sees it. The deployables import it by name.

Logging: ``log.info("offer rang no one", extra=fields(envelope))``, never the ids pasted
into the text, so a log search by call or tenant is a field match.
"""
from __future__ import annotations

import logging
import logging.config
import os
import time
import traceback
from collections.abc import Iterable
from typing import Any

import orjson

from .envelope import Envelope, deterministic_id

#: The tenant of facts that belong to no tenant: a node's heartbeats and snapshots, a
#: record nobody could read.
SYSTEM_TENANT = "_system"
#: How much of a refused record's bytes its dead-letter id is derived from.
_ID_BYTES = 4096


def now_us() -> int:
    """Now, in the contract's unit: integer microseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1000


def dead_letter(topic: str, reason: str, raw: bytes, *, source: str,
                position: tuple[int, int] | None = None, at: int | None = None,
                tenant: str = SYSTEM_TENANT) -> Envelope:
    """The record for the dead-letter topic: the refused bytes (latin-1, lossless), where
    they were read from or meant to go (``topic``) and why.

    The id comes from what was refused, so the same refusal again is the same record:
    the record's (partition, offset) in ``topic`` when it was read from Kafka
    (``position``), else its bytes as ``source`` saw them."""
    ident = (topic, *position) if position is not None else (source, topic, raw[:_ID_BYTES])
    return Envelope(event_id=deterministic_id("dead", *ident), type="dead_lettered",
                    version=1, occurred_at=now_us() if at is None else at, tenant=tenant,
                    source=source, seq=None, call_id=None,
                    payload={"topic": topic, "reason": reason, "raw": raw.decode("latin-1")})


def fields(envelope: Envelope, **more: Any) -> dict[str, Any]:
    """The log fields of a record (``extra=`` of a logging call): its tenant, call and id."""
    return {"tenant": envelope.tenant, "call_id": envelope.call_id,
            "event_id": envelope.event_id, **more}


def ready_records(consumer: Any, wait_s: float, log: logging.Logger, *,
                  most: int = 500) -> list[Any]:
    """What a confluent-kafka consumer has now: the first record as soon as it comes
    (waiting up to `wait_s`), then whatever else is already here, at most `most`. Errors
    are logged on `log` and left out (a partition's end is no error).

    Not `consume(most, timeout)` alone: librdkafka fills the batch and waits out the
    timeout unless `most` arrive, so a lone record sat up to the whole timeout (the
    actuator's decisions: p50 ~100 ms at 0.2 s; the API's config views: a change saved
    through one process read back stale through another). The consumer is duck-typed:
    the contract imports no Kafka client (tests/unit/test_dependencies.py)."""
    first = consumer.poll(wait_s)
    if first is None:
        return []
    records = []
    for msg in (first, *consumer.consume(num_messages=most - 1, timeout=0)):
        err = msg.error()
        if err is None:
            records.append(msg)
        elif err.code() != type(err)._PARTITION_EOF:  # confluent_kafka.KafkaError
            log.warning("%s", err)
    return records


# What every LogRecord has: anything else on a record came from ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, µs), level, logger, message, then the fields
    given with ``extra=`` (tenant, call_id, event_id, ...), then the error's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.created % 1 * 1_000_000):06d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str | int, *, quiet: Iterable[str] = ("kafka",),
                   take_over: Iterable[str] = ()) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a deployable: JSON lines on stderr at ``level``;
    the ``quiet`` libraries' loggers at WARNING or above; the ``take_over`` loggers lose
    the handlers their library gave them, so their lines are JSON lines too. Faust's worker
    takes it as its ``logging_config``, gunicorn as its ``logconfig_dict``."""
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(number, int):
        raise ValueError(f"log level {level!r}: must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return {
        "version": 1,
        "disable_existing_loggers": False,  # module-level loggers exist before this runs
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": number, "handlers": ["stderr"]},
        "loggers": {**{name: {"handlers": [], "propagate": True} for name in take_over},
                    **{name: {"level": max(logging.WARNING, number)} for name in quiet}},
    }


def setup_logging(level: str | int, *, quiet: Iterable[str] = ("kafka",)) -> None:
    """Configure this process's logging (see `logging_config`): call once, at start.

    Like `logging.basicConfig`, it leaves a root logger that already has handlers alone
    (a test runner or an embedding process configured logging first) but for quieting
    the ``quiet`` libraries."""
    config = logging_config(level, quiet=quiet)
    if logging.getLogger().handlers:
        for name, entry in config["loggers"].items():
            logging.getLogger(name).setLevel(entry["level"])
        return
    logging.config.dictConfig(config)


#: `TONGDAI_SCHEDULING`'s values: how the kernel schedules a deployable on the call path.
SCHEDULINGS = ("normal", "realtime")
#: `TONGDAI_SCHEDULING_PRIORITY`'s bounds: FreeSWITCH's call threads run at 1, its control
#: threads (event dispatch, sofia's worker, mod_callcenter's agent dispatch) at 99.
PRIORITIES = range(1, 99)


def check_scheduling(value: str, priority: int = 1) -> None:
    from .environ import SettingsError, env_name

    if value not in SCHEDULINGS:
        raise SettingsError(f"{env_name('scheduling')}={value!r}: must be "
                            f"{' or '.join(SCHEDULINGS)}")
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise SettingsError(f"{env_name('scheduling_priority')}={priority!r}: must be a whole "
                            f"number from {PRIORITIES[0]} to {PRIORITIES[-1]} (the switch's "
                            f"call threads run at 1, its control threads at 99)")


def schedule(scheduling: str, priority: int = 1) -> bool:
    """Put this process, and every thread it starts from now on, in the scheduling class of
    `scheduling`. FreeSWITCH runs realtime by default (SCHED_FIFO, its call threads at
    priority 1, its control threads at 99; then nice -10): a process of the call path on
    the same machine that stays `normal` waits behind the switch's media threads once the
    CPU is busy, while mod_callcenter, inside the switch, never does. Realtime here is
    round-robin (SCHED_RR: equal processes take turns) at `priority`: 1, beside the
    switch's call threads, is the default; 2 puts the call path ahead of them (better once
    the switch alone fills the CPU, worse below that: see TONGDAI_SCHEDULING_PRIORITY in
    deploy/ENVIRONMENT.md). Needs CAP_SYS_NICE (root, or systemd's
    CPUSchedulingPolicy=rr); refused, the process says so and runs normal. Call it first
    thing, before any thread starts. True when the class was set."""
    if scheduling != "realtime":
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        logging.getLogger("tongdai.edge").warning(
            "TONGDAI_SCHEDULING=realtime refused (%s): running with normal scheduling",
            exc)
        return False
    logging.getLogger("tongdai.edge").info("scheduled round-robin realtime, priority %d",
                                            priority)
    return True

