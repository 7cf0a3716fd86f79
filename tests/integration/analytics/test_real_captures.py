"""Real FreeSWITCH captures (tests/fixtures/esl) through the bridge's normalizer, Kafka and
the sink into ClickHouse 18.16: every call present once, with what its people lived
(tests/fixtures/esl/truth.py), in both of FreeSWITCH's event formats alike."""
from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

from analytics import migrations
from analytics.cdr import CDR_COLUMNS, OFFER_COLUMNS
from analytics.db import NativeDatabase
from analytics.sink import replay as sink_replay
from esl_bridge import protocol
from esl_bridge.cli import replay as bridge_replay
from esl_bridge.normalize import NormalizerConfig
from routing.contract import Envelope
from tests.fixtures.esl.truth import TRUTH
from tests.integration.analytics.test_sink_kafka import consume, encoded, produce, settings_for

pytestmark = [pytest.mark.analytics, pytest.mark.stack]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "esl"
CAPTURES = sorted(TRUTH)
TOLERANCE_MS = 40


def as_json(plain: bytes) -> bytes:
    """The same events as FreeSWITCH sends them under `event json ...` (all values strings,
    the body as `_body`): the capture's event frames re-encoded, other frames dropped."""
    out = []
    for frame in protocol.FrameParser().feed(plain):
        if frame.content_type == protocol.EVENT_PLAIN:
            event = protocol.parse_event(frame)
            out.append(protocol.encode_event_json(event, event.body))
    return b"".join(out)


def envelopes(path: Path) -> list[Envelope]:
    """What `tongdai bridge replay FILE` publishes for a capture."""
    out = io.StringIO()
    bridge_replay(path, to_kafka=False, config=NormalizerConfig(), bootstrap="", out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [Envelope(**d) for d in lines if "summary" not in d]


def live(db, table: str, columns, order: str) -> list[dict]:
    rows = db.query(f"SELECT {', '.join(columns)} FROM {db.database}.{table} FINAL "
                    f"WHERE sign = 1 ORDER BY {order}")
    return [dict(zip(columns, r)) for r in rows]


@pytest.fixture
def db(clickhouse_db, local_stack):
    _, name = clickhouse_db
    database = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port, name,
                              local_stack.clickhouse_user, local_stack.clickhouse_password)
    migrations.migrate(database)
    yield database
    database.close()


@pytest.fixture
def second_db(local_stack):
    database = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port,
                              f"t_json_{uuid.uuid4().hex[:8]}", local_stack.clickhouse_user,
                              local_stack.clickhouse_password)
    migrations.migrate(database)
    yield database
    database.execute(f"DROP DATABASE IF EXISTS {database.database}")
    database.close()


def test_plain_and_json_captures_normalize_to_the_same_records(tmp_path):
    for name in CAPTURES:
        plain = FIXTURES / f"{name}.txt"
        rendition = tmp_path / f"{name}.json.txt"
        rendition.write_bytes(as_json(plain.read_bytes()))
        assert envelopes(rendition) == envelopes(plain), name


def test_real_captures_through_kafka_and_the_sink_tell_each_call_as_lived(
        local_stack, kafka_topic, db, second_db, tmp_path):
    events = [e for name in CAPTURES for e in envelopes(FIXTURES / f"{name}.txt")]
    produce(local_stack.kafka_bootstrap, kafka_topic, encoded(events))
    consume(settings_for(local_stack, db, kafka_topic, uuid.uuid4().hex[:8]), db, len(events))

    calls = live(db, "calls", CDR_COLUMNS, "call_id")
    offers = live(db, "offers", OFFER_COLUMNS, "call_id, offer")
    truth = {cid: t for name in CAPTURES for cid, t in TRUTH[name].items()}
    # Every call once; no agent leg became a call of its own.
    assert sorted(c["call_id"] for c in calls) == sorted(truth)
    for c in calls:
        t = truth[c["call_id"]]
        for key in ("disposition", "direction", "caller", "agent_id", "hangup_side"):
            assert c[key] == t[key], (c["call_id"], key)
        for key in ("wait_ms", "talk_ms", "ring_ms"):
            assert abs(c[key] - t[key]) <= TOLERANCE_MS, (c["call_id"], key, c[key], t[key])
        assert c["final"] == 1
        mine = [(o["agent_id"], o["result"]) for o in offers if o["call_id"] == c["call_id"]]
        assert mine == t["offers"], c["call_id"]
        assert c["offer_us"] == min(o["offered_us"] for o in offers
                                    if o["call_id"] == c["call_id"])

    # The JSON form of the same captures, through the sink's writer: identical rows.
    json_events = []
    for name in CAPTURES:
        rendition = tmp_path / f"{name}.json.txt"
        rendition.write_bytes(as_json((FIXTURES / f"{name}.txt").read_bytes()))
        json_events += envelopes(rendition)
    sink_replay(second_db, sorted(json_events, key=lambda e: e.occurred_at), batch_size=7)
    assert live(second_db, "calls", CDR_COLUMNS, "call_id") == calls
    assert live(second_db, "offers", OFFER_COLUMNS, "call_id, offer") == offers
