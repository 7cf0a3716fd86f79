"""The deployables' edge helpers (routing/contract/edge.py): clock, dead letters, JSON logs."""
from __future__ import annotations

import io
import logging
import time

import orjson
import pytest

from routing.contract import Envelope, decode, encode
from routing.contract.edge import (
    SYSTEM_TENANT,
    JsonFormatter,
    dead_letter,
    fields,
    logging_config,
    now_us,
)
from routing.contract.schemas import PAYLOADS

pytestmark = pytest.mark.contract


def test_now_us_is_the_contracts_unit() -> None:
    before = time.time_ns() // 1000
    now = now_us()
    assert before <= now <= time.time_ns() // 1000


def test_a_dead_letter_is_a_valid_record_of_what_was_refused() -> None:
    raw = b"Content-Length: abc\n\n\xff"
    env = dead_letter("tongdai.fs.events.v1", "ProtocolError: bad Content-Length", raw,
                      source="node-1", at=1763800000123456)
    assert decode(encode(env)) == env
    assert PAYLOADS[("dead_lettered", 1)][1]().validate(env.payload) == {}
    assert env.payload["raw"].encode("latin-1") == raw  # lossless
    assert (env.type, env.tenant, env.source, env.occurred_at) == (
        "dead_lettered", SYSTEM_TENANT, "node-1", 1763800000123456)


def test_a_dead_letter_id_names_what_was_refused() -> None:
    topic = "tongdai.cc.events.v1"

    def again(raw: bytes, **kw) -> str:
        return dead_letter(topic, "later, another reason", raw, source="s", **kw).event_id

    first = dead_letter(topic, "not JSON", b"x", source="s").event_id
    assert again(b"x") == first != again(b"y")
    assert again(b"x", position=(3, 17)) == again(b"z", position=(3, 17)) != \
        again(b"x", position=(3, 18))


def _line(record_kw: dict, **extra) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.edge")
    log.addHandler(handler)
    log.propagate, log.level = False, logging.DEBUG
    try:
        log.warning(*record_kw["args"], extra=extra or None, exc_info=record_kw.get("exc"))
    finally:
        log.removeHandler(handler)
    return orjson.loads(stream.getvalue())


def test_log_lines_are_json_with_the_records_ids_as_fields() -> None:
    env = Envelope(event_id="e-1", type="channel_parked", version=1, occurred_at=1,
                   tenant="acme", source="n", call_id="call-1")
    line = _line({"args": ("offer %s rang no one", "o-1")}, **fields(env, node="n1"))
    assert line["message"] == "offer o-1 rang no one"
    assert (line["tenant"], line["call_id"], line["event_id"], line["node"]) == (
        "acme", "call-1", "e-1", "n1")
    assert (line["level"], line["logger"]) == ("WARNING", "tests.edge")
    assert line["time"].endswith("Z") and len(line["time"]) == len("2026-01-01T00:00:00.000000Z")


def test_a_field_left_empty_is_left_out_and_an_error_keeps_its_traceback() -> None:
    try:
        raise KeyError("queue")
    except KeyError as err:
        line = _line({"args": ("cannot route",), "exc": err}, call_id=None, tenant="acme")
    assert "call_id" not in line and line["tenant"] == "acme"
    assert "KeyError: 'queue'" in line["error"]


def test_logging_config_keeps_existing_loggers_and_quiets_libraries() -> None:
    config = logging_config("info")
    assert config["disable_existing_loggers"] is False
    assert config["root"]["level"] == logging.INFO
    assert config["loggers"]["kafka"]["level"] == logging.WARNING
    assert logging_config("ERROR")["loggers"]["kafka"]["level"] == logging.ERROR
    with pytest.raises(ValueError, match="log level 'loud'"):
        logging_config("loud")
    taken = logging_config("INFO", take_over=["gunicorn.error"])["loggers"]["gunicorn.error"]
    assert taken == {"handlers": [], "propagate": True}


def test_setup_logging_in_a_process_of_its_own() -> None:
    import subprocess
    import sys

    script = ("import logging\n"
              "early = logging.getLogger('tongdai.early')  # made before the set-up\n"
              "from routing.contract.edge import setup_logging\n"
              "setup_logging('INFO')\n"
              "early.info('connected', extra={'tenant': 'acme', 'call_id': 'c-1'})\n"
              "logging.getLogger('kafka.conn').info('chatter')\n"
              "logging.getLogger('kafka.conn').warning('broker down')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    lines = [orjson.loads(x) for x in done.stderr.splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("tongdai.early", "connected"), ("kafka.conn", "broker down")]
    assert (lines[0]["tenant"], lines[0]["call_id"]) == ("acme", "c-1")


def test_setup_logging_leaves_a_configured_root_alone(caplog) -> None:
    from routing.contract.edge import setup_logging

    before = list(logging.getLogger().handlers)  # pytest's: a host configured logging
    assert before
    kafka = logging.getLogger("kafka")
    level = kafka.level
    try:
        setup_logging("INFO")
        assert logging.getLogger().handlers == before
        assert kafka.level == logging.WARNING
    finally:
        kafka.setLevel(level)


# ---- scheduling (TONGDAI_SCHEDULING) ---------------------------------------------------

def test_a_scheduling_that_is_not_known_is_refused_naming_the_variable() -> None:
    import pytest

    from esl_bridge import settings as bridge_settings
    from routing.contract.environ import SettingsError

    with pytest.raises(SettingsError, match=r"TONGDAI_SCHEDULING='fast': must be normal or "
                                            r"realtime"):
        bridge_settings.load({"TONGDAI_SCHEDULING": "fast"})


def test_a_scheduling_priority_out_of_bounds_is_refused_naming_the_variable() -> None:
    import pytest

    from api import settings as api_settings
    from esl_bridge import settings as bridge_settings
    from routing.contract.environ import SettingsError
    from streams import settings as worker_settings

    for load in (bridge_settings.load, worker_settings.load, api_settings.load):
        for bad in ("0", "99"):
            with pytest.raises(SettingsError, match=rf"TONGDAI_SCHEDULING_PRIORITY={bad}: "
                                                    r"must be a whole number from 1 to 98"):
                load({"TONGDAI_SCHEDULING": "realtime", "TONGDAI_SCHEDULING_PRIORITY": bad,
                      "TONGDAI_FREESWITCH": "127.0.0.1:8021:pw"})
    assert bridge_settings.load({"TONGDAI_SCHEDULING_PRIORITY": "2"}).scheduling_priority == 2
    assert bridge_settings.load({}).scheduling_priority == 1


def test_realtime_puts_the_process_and_its_later_threads_in_round_robin() -> None:
    """In a child process (this one keeps its class): either the class is set, for the
    process and a thread it starts after, at the priority asked, or it is refused and said
    so, and nothing changed."""
    import subprocess
    import sys

    script = (
        "import logging, os, threading\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from routing.contract.edge import schedule\n"
        "done = schedule('realtime', 2)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
        "t.start(); t.join()\n"
        "print(done, os.sched_getscheduler(0) == os.SCHED_RR, seen[0] == os.SCHED_RR,\n"
        "      os.sched_getparam(0).sched_priority)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    done, process_rr, thread_rr, priority = out.stdout.split()
    if done == "True":
        assert (process_rr, thread_rr, priority) == ("True", "True", "2")
    else:
        assert (process_rr, thread_rr, priority) == ("False", "False", "0")
        assert "TONGDAI_SCHEDULING=realtime refused" in out.stderr


def test_normal_leaves_the_scheduling_alone() -> None:
    import os

    from routing.contract.edge import schedule

    before = os.sched_getscheduler(0)
    assert schedule("normal") is False
    assert os.sched_getscheduler(0) == before
