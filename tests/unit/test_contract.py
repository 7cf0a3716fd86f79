"""The event contract: golden records per type and version, codec, upcasting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.contract import DecodeError, Envelope, UpcastError, decode, encode, upcast
from routing.contract import topics
from routing.contract.envelope import deterministic_id
from routing.contract.schemas import CURRENT_VERSION, PAYLOADS, RecordSchema

pytestmark = pytest.mark.contract

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "contract"


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def test_every_registered_type_and_version_has_a_golden_record():
    have = {tuple(p.name.removesuffix(".json").rsplit(".v", 1)) for p in golden_files()}
    want = {(t, str(v)) for t, v in PAYLOADS}
    assert want - have == set(), "types without a golden fixture"
    assert have - want == set(), "golden fixtures of unregistered types"


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.name)
def test_golden_record_is_valid_and_round_trips(path: Path):
    raw = json.loads(path.read_text())
    assert RecordSchema().validate(raw) == {}
    envelope = decode(path.read_bytes())
    assert envelope.to_dict() == raw
    assert decode(encode(envelope)) == envelope
    assert f"{envelope.type}.v{envelope.version}.json" == path.name


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.name)
def test_golden_record_sits_on_the_topic_of_its_type(path: Path):
    raw = json.loads(path.read_text())
    topic, _ = PAYLOADS[(raw["type"], raw["version"])]
    assert topic in {spec.name for spec in topics.TOPICS}


def _valid() -> dict:
    return json.loads((GOLDEN / "call_offered.v1.json").read_text())


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.pop("tenant"), "tenant"),
    (lambda r: r.update(tenant=""), "tenant"),
    (lambda r: r.update(version="1"), "version"),
    (lambda r: r.update(occurred_at=-1), "occurred_at"),
    (lambda r: r.update(occurred_at=1.5), "occurred_at"),
    (lambda r: r.update(seq="7"), "seq"),
    (lambda r: r.update(call_id=7), "call_id"),
    (lambda r: r.update(payload=[]), "payload"),
    (lambda r: r.update(extra=1), "extra"),
])
def test_decode_rejects_bad_envelopes_naming_the_field(mutate, field):
    record = _valid()
    mutate(record)
    with pytest.raises(DecodeError, match=field):
        decode(json.dumps(record))


@pytest.mark.parametrize("data", [b"", b"not json", b"[1,2]", b"\xff\xfe"])
def test_decode_rejects_non_objects(data):
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("mutate, path", [
    (lambda r: r["payload"].pop("agent_id"), "agent_id"),
    (lambda r: r["payload"].update(attempt="one"), "attempt"),
    (lambda r: r["payload"].update(agnet_id="x"), "agnet_id"),
    (lambda r: r.update(type="call_teleported"), "type"),
    (lambda r: r.update(type="CallOffered"), "type"),
])
def test_schema_names_the_bad_payload_field(mutate, path):
    record = _valid()
    mutate(record)
    errors = RecordSchema().validate(record)
    assert errors
    assert path in json.dumps(errors)


@pytest.mark.parametrize("parts", [("core", 1), ("a", "bc"), ("Nguyễn", 3.5, None), ()])
def test_deterministic_id_is_a_standard_uuid5(parts):
    import uuid

    from routing.contract.envelope import TONGDAI_NAMESPACE

    expected = uuid.uuid5(TONGDAI_NAMESPACE, "\x1f".join(map(str, parts)))
    assert deterministic_id(*parts) == str(expected)


def test_deterministic_ids_are_stable_and_distinct():
    assert deterministic_id("core", 1) == deterministic_id("core", 1)
    assert deterministic_id("core", 1) != deterministic_id("core", 2)
    assert deterministic_id("a", "bc") != deterministic_id("ab", "c")


def _old(version: int) -> Envelope:
    return Envelope("e1", "agent_paused", version, 0, "acme", "api", None, None,
                    {"agent": "7", "why": "lunch"})


def test_upcast_applies_each_step_in_order():
    chain = {
        ("agent_paused", 1): lambda p: {"agent_id": p.pop("agent"), **p},
        ("agent_paused", 2): lambda p: {"agent_id": p["agent_id"], "reason": p["why"]},
    }
    current = {"agent_paused": 3}
    result = upcast(_old(1), chain, current)
    assert result.version == 3
    assert result.payload == {"agent_id": "7", "reason": "lunch"}
    assert upcast(_old(2) .with_payload({"agent_id": "7", "why": "x"}, 2), chain,
                  current).payload == {"agent_id": "7", "reason": "x"}


def test_upcast_refuses_unknown_future_and_gapped_versions():
    with pytest.raises(UpcastError, match="newer than this reader"):
        upcast(_old(4), {}, {"agent_paused": 3})
    with pytest.raises(UpcastError, match="no upcaster for agent_paused v1"):
        upcast(_old(1), {}, {"agent_paused": 2})
    with pytest.raises(UpcastError, match="unknown record type"):
        upcast(_old(1), {}, {})


def test_current_records_pass_through_upcast_unchanged():
    envelope = decode((GOLDEN / "call_enqueued.v1.json").read_bytes())
    assert CURRENT_VERSION["call_enqueued"] == 1
    assert upcast(envelope) is envelope
