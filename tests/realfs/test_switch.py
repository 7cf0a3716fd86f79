"""(a) FreeSWITCH, built from source, loads fs-conf without an error."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

MODULES_CONF = Path(__file__).resolve().parents[2] / "fs-conf" / "autoload_configs" / \
    "modules.conf.xml"


def test_fs_conf_loads_with_no_error_and_every_module(product):
    sw = product.switch
    assert sw.log.exists()
    assert sw.errors() == []
    wanted = re.findall(r'<load module="(mod_[a-z0-9_]+)"', MODULES_CONF.read_text())
    esl = sw.esl()
    try:
        missing = [m for m in wanted if esl.api(f"module_exists {m}").strip() != "true"]
        profiles = esl.api("sofia status")
    finally:
        esl.close()
    assert wanted and missing == []
    for profile in ("internal", "external", "branches"):
        assert re.search(rf"^\s*{profile}\s+profile\s+\S+\s+RUNNING", profiles, re.M), profiles


def test_agents_registered_with_digest_auth(product):
    esl = product.switch.esl()
    try:
        regs = esl.api("sofia status profile internal reg")
    finally:
        esl.close()
    for agent in product.agents.values():
        assert f"{agent.ext}@{product.domain}" in regs, regs
