"""The live view is declared once, in the contract (LiveStateV1 and its nested schemas): the
API's answer and its OpenAPI document come from there. A field added to the contract is
served and documented by the API with no other edit."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from marshmallow import Schema, fields

from routing.contract.schemas import LiveStateV1

pytestmark = pytest.mark.api
ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "fixtures" / "contract" / "live_state_published.v1.json"
API_ADDS = {"LiveOut": {"age_ms", "agents_by_state", "calls_waiting", "calls_in_progress"},
            "LiveAgentOut": {"time_in_state_ms"}}


def _resolve(doc: dict, node: dict) -> dict:
    """A schema object of the document, its `$ref` (also inside a nullable anyOf) followed."""
    for option in node.get("anyOf", [node]):
        if "$ref" in option:
            return doc["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
    return node


def _undocumented(doc: dict, schema: type[Schema], node: dict, path: str) -> list[str]:
    """Contract fields (recursively) that the document's `node` lacks or types otherwise."""
    out = []
    props = node["properties"]
    for name, field in schema().fields.items():
        prop = props.get(name)
        if prop is None:
            out.append(f"{path}.{name}")
            continue
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(field, fields.List):
            if prop.get("type") != "array":
                out.append(f"{path}.{name}: not an array")
            prop = prop["items"]
        if isinstance(inner, fields.Nested):
            out += _undocumented(doc, type(inner.schema), _resolve(doc, prop), f"{path}.{name}")
        elif field.allow_none and not prop.get("nullable"):
            out.append(f"{path}.{name}: not nullable")
    return out


def test_every_field_of_the_contracts_view_is_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    live = doc["components"]["schemas"]["LiveOut"]
    assert _undocumented(doc, LiveStateV1, live, "LiveOut") == []
    agent = doc["components"]["schemas"]["LiveAgentOut"]
    assert API_ADDS["LiveOut"] <= set(live["required"]) and "age_ms" in live["properties"]
    assert "time_in_state_ms" in agent["required"]
    assert "newest first" in live["properties"]["recent"]["description"]


_ADDED = '    tile_x = fields.Integer(load_default=None, allow_none=True, metadata={{' \
         '"description": "added in one edit to {cls}"}})\n'
_EDITED = ("LiveStateV1", "LiveAgentV1", "LiveCallV1", "LiveEwtV1")

_PROBE = """
import json, sys
from api import settings
from api.app import create_app
from api.bus import MemoryBus, envelope
from routing.contract import Envelope, topics
from routing.contract.schemas import RecordSchema

record = json.loads(sys.stdin.read())
assert RecordSchema().validate(record) == {}, "the edited contract takes the new field"
bus = MemoryBus()
app = create_app(settings.load({"TONGDAI_API_TOKEN_SECRET": "s" * 48,
                                "TONGDAI_API_XML_CURL_PASSWORD": "p"}), bus, None)
token, _ = app.extensions["tongdai"].tokens.mint("acme", "supervisor", "u")
client = app.test_client()
bus.publish(topics.LIVE, b"acme", Envelope(**record))
live = client.get("/api/v1/live", headers={"Authorization": "Bearer " + token}).get_json()
doc = client.get("/api/v1/openapi.json").get_json()
print(json.dumps({"live": live, "doc": doc}))
"""


def test_a_field_added_to_the_contract_is_served_and_documented_with_no_other_edit(tmp_path):
    """The contract's file is edited in a copy of `routing/` (a field added to the top
    level, to an agent, a call and a queue's estimate); the unedited API, run on it,
    documents the field at each place and serves it as the record has it."""
    shutil.copytree(ROOT / "routing", tmp_path / "routing",
                    ignore=shutil.ignore_patterns("__pycache__"))
    contract = tmp_path / "routing" / "contract" / "schemas.py"
    text = contract.read_text()
    for cls in _EDITED:  # the field goes at the end of the class's body
        text, n = re.subn(rf"(\nclass {cls}\(_Strict\):\n.*?\n)(?=\n\n)",
                          lambda m, c=cls: m.group(1) + _ADDED.format(cls=c), text,
                          count=1, flags=re.S)
        assert n == 1, cls
    contract.write_text(text)

    record = json.loads(GOLDEN.read_text())
    view = record["payload"]
    view["tile_x"] = 1
    view["agents"][0]["tile_x"] = 2
    view["calls"][1]["tile_x"] = 3
    view["queues"][0]["ewt"]["tile_x"] = 4
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    # cwd: the copy, so that it (first on the path with -c) shadows the repository's routing/
    run = subprocess.run([sys.executable, "-c", _PROBE], input=json.dumps(record), env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)

    live = out["live"]
    assert (live["tile_x"], live["agents"][0]["tile_x"], live["calls"][1]["tile_x"],
            live["queues"][0]["ewt"]["tile_x"]) == (1, 2, 3, 4)
    assert "tile_x" not in live["calls"][0], "absent in the record, absent in the answer"
    doc = out["doc"]
    schemas = doc["components"]["schemas"]
    agent = _resolve(doc, schemas["LiveOut"]["properties"]["agents"]["items"])
    call = _resolve(doc, schemas["LiveOut"]["properties"]["calls"]["items"])
    queue = _resolve(doc, schemas["LiveOut"]["properties"]["queues"]["items"])
    ewt = _resolve(doc, queue["properties"]["ewt"])
    for cls, node in zip(_EDITED, (schemas["LiveOut"], agent, call, ewt)):
        assert node["properties"]["tile_x"] == {
            "type": "integer", "nullable": True, "default": None,
            "description": f"added in one edit to {cls}"}, cls
    assert "time_in_state_ms" in agent["properties"] and "age_ms" in schemas["LiveOut"][
        "properties"], "the API's own fields stay beside the contract's"
