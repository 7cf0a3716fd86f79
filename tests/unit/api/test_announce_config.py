"""A queue that announces position and wait needs its prompts on the switch: `config
apply` refuses it while any is missing, and accepts it once make-sounds spoke them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from api.auth import Principal
from api.config.apply import apply
from routing.announce import PROMPT_FILES
from routing.callbacks import PROMPT_FILES as CALLBACK_PROMPTS

pytestmark = pytest.mark.api
WHO = Principal("acme", "admin", "cli:test", "t", 2**31)
ROOT = Path(__file__).resolve().parents[3]


def test_an_announcing_queue_needs_every_prompt(app, tmp_path):
    svc = app.extensions["tongdai"].config
    doc = {"tenant": "acme", "queues": {"support": {"announce_every_s": 60},
                                        "quiet": {"announce_every_s": None}}}
    callie = tmp_path / "en" / "us" / "callie"
    for ref in PROMPT_FILES[:-1]:  # all but one
        (callie / ref).parent.mkdir(parents=True, exist_ok=True)
        (callie / ref).write_bytes(b"RIFF")
    outcomes = {o.entity_id: o for o in apply(svc, WHO, doc, sounds=tmp_path)}
    assert outcomes["quiet"].status == "created"
    bad = outcomes["support"]
    assert bad.status == "invalid" and [e["field"] for e in bad.errors] == ["announce_every_s"]
    assert PROMPT_FILES[-1] in bad.errors[0]["rule"]
    (callie / PROMPT_FILES[-1]).write_bytes(b"RIFF")
    assert {o.status for o in apply(svc, WHO, doc, sounds=tmp_path)} <= {"created", "unchanged"}


def test_an_interval_out_of_range_is_refused_by_name(app):
    svc = app.extensions["tongdai"].config
    (o,) = apply(svc, WHO, {"tenant": "acme", "queues": {"q": {"announce_every_s": -5}}})
    assert o.status == "invalid" and o.errors[0]["field"].endswith("announce_every_s")


@pytest.mark.skipif(subprocess.run(["which", "espeak-ng"], capture_output=True).returncode,
                    reason="espeak-ng is not installed (deploy/local/setup.sh installs it)")
def test_make_sounds_speaks_every_announcement_prompt(tmp_path):
    subprocess.run(["bash", str(ROOT / "deploy/freeswitch/make-sounds.sh"), str(tmp_path)],
                   check=True, capture_output=True, timeout=300)
    callie = tmp_path / "en" / "us" / "callie"
    assert [ref for ref in PROMPT_FILES + CALLBACK_PROMPTS if not (callie / ref).is_file()] == []


def test_a_queue_offering_callbacks_needs_their_prompts(app, tmp_path):
    svc = app.extensions["tongdai"].config
    doc = {"tenant": "acme", "queues": {"support": {"callback_key": "1"}}}
    (o,) = apply(svc, WHO, doc, sounds=tmp_path)
    assert o.status == "invalid" and [e["field"] for e in o.errors] == ["callback_key"]
    callie = tmp_path / "en" / "us" / "callie"
    for ref in CALLBACK_PROMPTS:
        (callie / ref).parent.mkdir(parents=True, exist_ok=True)
        (callie / ref).write_bytes(b"RIFF")
    assert {o.status for o in apply(svc, WHO, doc, sounds=tmp_path)} == {"created"}
    (bad,) = apply(svc, WHO, {"tenant": "acme", "queues": {"q": {"callback_key": "12"}}})
    assert bad.status == "invalid" and "one key" in bad.errors[0]["rule"]
