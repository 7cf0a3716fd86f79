"""Every prompt the product references exists in the switch's sounds folder once
deploy/freeswitch/make-sounds.sh ran (issue 14: a source build ships no sounds; prompts
referenced but missing, no folder for local_stream://moh: callers heard silence).

References: fs-conf (`$${tongdai_sounds_dir}/...`, `ivr/...`, `voicemail/...`), the IVR
defaults the API renders, the demo's and this suite's menus (checked as `config apply`
checks them), the vanilla voicemail phrases' files, and the moh folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from api.config import sounds
from deploy.local.up import DEMO

pytestmark = [pytest.mark.realfs]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sounds_dir(switch_prefix) -> Path:
    folder = switch_prefix / "share" / "freeswitch" / "sounds"
    if not (folder / "tongdai").is_dir():
        pytest.fail(f"no generated prompts in {folder}: run deploy/freeswitch/make-sounds.sh")
    return folder


def fs_conf_references() -> set[str]:
    refs: set[str] = set()
    for path in (ROOT / "fs-conf").rglob("*.xml"):
        text = path.read_text()
        refs |= {f"tongdai/{m}" for m in re.findall(r"\$\$\{tongdai_sounds_dir\}/([\w/.-]+\.wav)", text)}
        refs |= set(re.findall(r"[\"' ]((?:ivr|voicemail|digits|misc)/[\w.-]+\.wav)", text))
    return refs


def test_every_sound_fs_conf_and_the_api_reference_exists(sounds_dir):
    refs = fs_conf_references() | {sounds.DEFAULT_INVALID, "voicemail/vm-goodbye.wav"}
    assert len(refs) > 5
    missing = []
    for ref in sorted(refs):
        if ref.startswith("tongdai/"):
            ok = (sounds_dir / ref).is_file()
        else:
            ok = sounds.exists(sounds_dir, ref)
        if not ok:
            missing.append(ref)
    assert missing == []


def test_the_voicemail_phrases_files_and_the_music_on_hold_exist(sounds_dir, switch_prefix):
    phrases = (switch_prefix / "etc" / "freeswitch" / "lang" / "en" / "vm" / "sounds.xml")
    files = set(re.findall(r'data="([\w/.-]+\.wav)"', phrases.read_text()))
    assert len(files) > 40
    assert [f for f in sorted(files) if not sounds.exists(sounds_dir, f)] == []
    assert sounds.exists(sounds_dir, "local_stream://moh")
    spelled = [sounds_dir / sounds.PREFIX / "ascii" / f"{ord(c)}.wav" for c in "q_closed"]
    assert all(p.is_file() for p in spelled)


def test_the_demo_and_the_suites_menus_pass_config_applys_sound_check(sounds_dir):
    from tests.realfs.conftest import tenant_yaml

    for text in (DEMO.read_text(), tenant_yaml("t", "d.test", "02831111111", "02832222222",
                                               {"a1": "2001"}, "02833333333")):
        doc = yaml.safe_load(text)
        for kind, section in (("ivr", "ivrs"), ("queue", "queues")):
            for entity, data in (doc.get(section) or {}).items():
                assert sounds.missing(kind, data, sounds_dir) == {}, (entity, data)
