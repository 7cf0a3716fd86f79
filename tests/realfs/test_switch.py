"""(a) FreeSWITCH, built from source, loads fs-conf without an error."""
from __future__ import annotations

import re
import time
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
    # loaded once the switch has started (fs-conf/vars.xml, api_on_startup)
    esl = sw.esl()
    try:
        assert esl.api("module_exists mod_xml_curl").strip() == "true"
    finally:
        esl.close()
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


def test_a_switch_started_before_the_api_starts_clean_then_asks_the_api(product):
    """Start order the other way round (issue 14): FreeSWITCH first, the API not up yet.
    It starts with no error line (it asks the API for no module configuration: mod_xml_curl
    is loaded once the switch has started), and once the API is up its phones register
    with the API's directory."""
    from tests.integration.harness import start_process, stop_process, wait_ready

    from .conftest import free_port, register, start_switch, stop_switch

    api_port = free_port()
    sw = start_switch(product.switch.prefix, product.folder / "freeswitch-first", api_port,
                      product.xml_curl_password)
    api = None
    try:
        esl = sw.esl()
        try:
            deadline = time.monotonic() + 20
            while esl.api("module_exists mod_xml_curl").strip() != "true":
                assert time.monotonic() < deadline, "mod_xml_curl never loaded"
                time.sleep(0.3)
        finally:
            esl.close()
        assert sw.errors() == []
        api = start_process("api", product.folder, {
            **product.env, "TONGDAI_API_PORT": str(api_port),
            "TONGDAI_API_XML_CURL_PASSWORD": product.xml_curl_password})
        wait_ready(api, "Listening at")
        agent = product.agents["a1"]
        # "Listening" comes before the API has read the configuration topic (the whole
        # shared log): until then it answers "not found", as it should
        wait_directory(api_port, product, agent.ext)
        register(product.folder, sw, product.domain, agent)  # digest auth: the API's a1-hash
        esl = sw.esl()
        try:
            regs = esl.api("sofia status profile internal reg")
        finally:
            esl.close()
        assert f"{agent.ext}@{product.domain}" in regs, regs
        assert sw.errors() == []
    finally:
        if api is not None:
            stop_process(api)
        stop_switch(sw)


def wait_directory(api_port: int, product, ext: str, timeout: float = 60) -> None:
    """Until the API at `api_port` answers mod_xml_curl's directory lookup of `ext`."""
    import base64
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode({"section": "directory", "domain": product.domain,
                                   "user": ext}).encode()
    auth = base64.b64encode(f"freeswitch:{product.xml_curl_password}".encode()).decode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v1/freeswitch/xml",
                                     data=body, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            if f'<user id="{ext}"' in r.read().decode():
                return
        time.sleep(0.5)
    raise AssertionError(f"the API never knew {ext}@{product.domain}")


def test_the_switch_tells_vietnam_time(product):
    """Business hours, holidays and recording folders use the `Asia/Ho_Chi_Minh` zone of
    fs-conf's timezones.conf: once written as tzdata does ("<+07>-7"), which FreeSWITCH's
    parser reads as UTC (the switch's "Vietnam time" was 7 hours early)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    esl = product.switch.esl()
    try:
        said = esl.api("strftime_tz Asia/Ho_Chi_Minh %Y-%m-%d %H:%M").strip()
    finally:
        esl.close()
    now = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    told = dt.datetime.strptime(said, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert abs((told - now).total_seconds()) < 120, (said, now)
