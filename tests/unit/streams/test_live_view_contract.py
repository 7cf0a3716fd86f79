"""The router's live view is exactly the contract's LiveStateV1: every field it declares, at
every level, and nothing else. The contract is the one declaration of the view (the API
derives its answer and its documentation from it), so the builder is held to it here."""
from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from routing.contract import Envelope
from routing.contract.schemas import LiveStateV1, RecordSchema
from streams.router import handle, live_view
from test_router import T0, _connected, cmd, fs, leg, setup

pytestmark = pytest.mark.streams


def _nested(field: fields.Field) -> type[Schema] | None:
    inner = field.inner if isinstance(field, fields.List) else field
    return type(inner.schema) if isinstance(inner, fields.Nested) else None


def _schemas(schema: type[Schema]) -> set[type[Schema]]:
    """`schema` and every schema nested in it."""
    found = {schema}
    for field in schema().fields.values():
        sub = _nested(field)
        if sub is not None:
            found |= _schemas(sub)
    return found


def _mismatches(schema: type[Schema], value: dict, path: str,
                seen: set[type[Schema]]) -> list[str]:
    """Where `value`'s keys differ from the fields `schema` declares (recursively)."""
    seen.add(schema)
    declared = schema().fields
    missing, extra = set(declared) - set(value), set(value) - set(declared)
    out = [f"{path}: missing {sorted(missing)}"] if missing else []
    out += [f"{path}: undeclared {sorted(extra)}"] if extra else []
    for name, field in declared.items():
        sub, item = _nested(field), value.get(name)
        if sub is None or item is None:
            continue
        for i, element in enumerate(item if isinstance(field, fields.List) else [item]):
            out += _mismatches(sub, element, f"{path}.{name}[{i}]", seen)
    return out


def test_the_router_fills_every_field_of_the_contracts_view_and_no_other():
    r = setup()
    _connected(r)  # c1 talks to a1
    handle(r, cmd("agent_pause_requested", 14, agent_id="a2", reason="lunch"))
    handle(r, fs("channel_parked", 15, "c2", **leg("c2", "c2", queue="support",
                                                    caller="+84903000000")))
    view = live_view(r, T0 + 20_000_000)
    seen: set[type[Schema]] = set()
    assert _mismatches(LiveStateV1, view, "view", seen) == []
    assert seen == _schemas(LiveStateV1), "every nested schema was met with a value"
    assert view["queues"][0]["ewt"] is not None and view["recent"]
    env = Envelope("x", "live_state_published", 1, T0, "acme", "w", None, None, view)
    assert RecordSchema().validate(env.to_dict()) == {}


def test_a_key_the_contract_does_not_declare_is_caught():
    """The check above can fail: an extra or a missing key is named with its path."""
    r = setup()
    _connected(r)
    view = live_view(r, T0 + 20_000_000)
    view["calls"][0]["tile"] = 1
    del view["agents"][0]["extension"]
    assert _mismatches(LiveStateV1, view, "view", set()) == [
        "view.agents[0]: missing ['extension']", "view.calls[0]: undeclared ['tile']"]
