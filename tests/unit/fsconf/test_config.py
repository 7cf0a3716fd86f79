"""fs-conf as FreeSWITCH reads it: well-formed, safe defaults, secrets only from the start script."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tests.unit.fsconf import fsxml
from tests.unit.fsconf.conftest import ESL_PASSWORD, FS_CONF, XML_CURL_PASSWORD, render

pytestmark = pytest.mark.fsconf

XML_FILES = sorted(FS_CONF.rglob("*.xml"))
# Modules of a vanilla FreeSWITCH 1.10 build (modules.conf of the source tree, enabled ones).
VANILLA = {
    "mod_console", "mod_logfile", "mod_xml_curl", "mod_event_socket", "mod_sofia",
    "mod_loopback", "mod_commands", "mod_dptools", "mod_hash", "mod_db", "mod_expr",
    "mod_voicemail", "mod_dialplan_xml", "mod_g723_1", "mod_g729", "mod_opus", "mod_sndfile",
    "mod_native_file", "mod_local_stream", "mod_tone_stream", "mod_say_en", "mod_conference",
    "mod_fifo", "mod_callcenter", "mod_httapi", "mod_cdr_csv", "mod_spandsp", "mod_amr",
    "mod_b64", "mod_esf", "mod_fsv", "mod_valet_parking", "mod_enum", "mod_cdr_sqlite",
}


def test_there_is_a_configuration():
    assert len(XML_FILES) >= 20


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: str(p.relative_to(FS_CONF)))
def test_every_file_is_well_formed_and_keeps_the_line_rules(path):
    fsxml.parse_file(path)


def test_no_default_password_anywhere_in_the_configuration(conf_dir):
    for path in [*XML_FILES, *conf_dir.rglob("*.xml")]:
        assert "cluecon" not in path.read_text().lower(), path


def test_the_tree_loads_with_every_global_defined(fs):
    for name in ("tongdai_esl_password", "tongdai_api_url", "tongdai_sip_ip"):
        assert fsxml.globals_of(fs)[name]


def test_event_socket_binds_to_the_configured_address_with_the_secret_and_an_acl(fs):
    settings = fsxml.params(fsxml.configuration(fs, "event_socket.conf"))
    assert settings["password"] == ESL_PASSWORD
    assert settings["listen-ip"] == "10.0.0.5" and settings["listen-port"] == "8021"
    acl = settings["apply-inbound-acl"]
    lists = {n.get("name"): n for n in fsxml.configuration(fs, "acl.conf").iter("list")}
    assert lists[acl].get("default") == "deny"
    assert [n.get("cidr") for n in lists[acl]] == ["10.0.0.0/24"]


def test_the_event_socket_password_is_a_global_from_the_start_script():
    text = (FS_CONF / "autoload_configs" / "event_socket.conf.xml").read_text()
    assert 'name="password" value="$${tongdai_esl_password}"' in text
    assert "tongdai_esl_password" not in (FS_CONF / "vars.xml").read_text()


@pytest.mark.parametrize("env, message", [
    ({}, "TONGDAI_FS_ESL_PASSWORD .* is required"),
    ({"TONGDAI_FS_ESL_PASSWORD": "ClueCon"}, "default password"),
    ({"TONGDAI_FS_ESL_PASSWORD": "short"}, "12-128 characters"),
    ({"TONGDAI_FS_ESL_PASSWORD": 'with"quote-in-it'}, "12-128 characters"),
    ({"TONGDAI_FS_ESL_PASSWORD": ESL_PASSWORD, "TONGDAI_FS_ESL_ALLOW_CIDR": "0.0.0.0"}, "CIDR"),
    ({"TONGDAI_FS_ESL_PASSWORD": ESL_PASSWORD, "TONGDAI_FS_API_URL": "ftp://x"}, "http"),
    ({"TONGDAI_FS_ESL_PASSWORD": ESL_PASSWORD, "TONGDAI_FS_XML_CURL_BINDINGS": "dialplan|sofia"},
     "dialplan, directory, configuration"),
])
def test_the_start_script_refuses_bad_settings(tmp_path, env, message):
    done = render(tmp_path, **env)
    assert done.returncode == 2 and re.search(message, done.stderr), done.stderr
    assert not (tmp_path / "runtime" / "node.xml").exists()


def test_the_api_lookups_can_be_narrowed(tmp_path):
    assert render(tmp_path, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD,
                  TONGDAI_FS_XML_CURL_BINDINGS="dialplan|directory").returncode == 0
    root = fsxml.load(tmp_path / "freeswitch.xml")
    url = next(p for p in fsxml.configuration(root, "xml_curl.conf").iter("param")
               if p.get("name") == "gateway-url")
    assert url.get("bindings") == "dialplan|directory"


def test_the_password_can_come_from_a_file_and_runtime_is_private(tmp_path):
    secret = tmp_path / "esl"
    secret.write_text("from-a-file-password\n")
    target = tmp_path / "conf"
    assert render(target, TONGDAI_FS_ESL_PASSWORD_FILE=str(secret)).returncode == 0
    node = target / "runtime" / "node.xml"
    assert (node.stat().st_mode & 0o077) == 0
    root = fsxml.load(target / "freeswitch.xml")
    assert fsxml.globals_of(root)["tongdai_esl_password"] == "from-a-file-password"
    # Without configured passwords the static users and the api lookups get random ones.
    assert len(fsxml.globals_of(root)["tongdai_sip_password_acme_1000"]) >= 32


def test_modules_are_vanilla_and_xml_curl_loads_once_the_switch_has_started(fs):
    """mod_xml_curl after every module's, the ACLs' and post_load_*.conf's configuration:
    then a switch started before the api asks it nothing at start and logs no error (loaded
    first, it asked for 18 configurations, each an [ERR] with the api not up yet)."""
    modules = [m.get("module") for m in fsxml.configuration(fs, "modules.conf").iter("load")]
    assert set(modules) <= VANILLA
    assert "mod_xml_curl" not in modules
    assert fsxml.globals_of(fs)["api_on_startup"] == "load mod_xml_curl"
    assert {"mod_sofia", "mod_event_socket", "mod_dialplan_xml", "mod_hash", "mod_dptools",
            "mod_commands", "mod_voicemail", "mod_local_stream"} <= set(modules)


def test_xml_curl_asks_the_api_with_basic_auth(fs):
    binding = fsxml.configuration(fs, "xml_curl.conf").find("./bindings/binding")
    url = next(p for p in binding.iter("param") if p.get("name") == "gateway-url")
    assert url.get("value") == "http://api:8080/api/v1/freeswitch/xml"
    assert set(url.get("bindings").split("|")) == {"dialplan", "directory", "configuration"}
    p = fsxml.params(binding)
    assert p["gateway-credentials"] == f"freeswitch:{XML_CURL_PASSWORD}"
    assert p["auth-scheme"] == "basic" and 0 < int(p["timeout"]) <= 5


def profiles(fs) -> dict[str, ET.Element]:
    return {p.get("name"): p for p in fsxml.configuration(fs, "sofia.conf").iter("profile")}


def test_phones_profile_requires_digest_auth_and_refuses_blind_registration(fs):
    p = fsxml.params(profiles(fs)["internal"].find("settings"))
    assert p["auth-calls"] == "true"
    assert p["accept-blind-reg"] == "false" and p["accept-blind-auth"] == "false"
    assert p["inbound-reg-force-matching-username"] == "true"
    assert p["context"] == "tongdai_reject"  # an unauthenticated call goes nowhere


@pytest.mark.parametrize("name, acl, context", [
    ("external", "tongdai_carriers", "public"),
    ("branches", "tongdai_branches", "tongdai_branch_in"),
])
def test_trunk_profiles_accept_only_their_acl_and_never_registrations(fs, name, acl, context):
    p = fsxml.params(profiles(fs)[name].find("settings"))
    assert p["apply-inbound-acl"] == acl and p["context"] == context
    assert p["disable-register"] == "true" and p["accept-blind-reg"] == "false"
    lists = {n.get("name"): n for n in fsxml.configuration(fs, "acl.conf").iter("list")}
    assert lists[acl].get("default") == "deny"


def test_profiles_use_distinct_ports(fs):
    ports = [fsxml.params(p.find("settings"))["sip-port"] for p in profiles(fs).values()]
    assert len(set(ports)) == len(ports) == 3


def test_directory_has_one_domain_per_tenant_and_no_literal_passwords(fs):
    domains = {d.get("name"): d for d in fsxml.section(fs, "directory").iter("domain")}
    assert set(domains) == {"acme.tongdai.local", "beta.tongdai.local"}
    for text in (FS_CONF / "directory").glob("*.xml"):
        for value in re.findall(r'name="password" value="([^"]*)"', text.read_text()):
            assert value.startswith("$${"), (text, value)
    for name, dom in domains.items():
        variables = {v.get("name"): v.get("value") for v in dom.findall("./variables/variable")}
        tenant = variables["tongdai_tenant"]
        assert variables["user_context"] == f"tongdai_{tenant}"
        assert "international" not in variables["tongdai_outbound"]


def test_timezone_of_the_dialplan_is_known_to_freeswitch(fs):
    zones = {z.get("name") for z in fsxml.configuration(fs, "timezones.conf").iter("zone")}
    assert fsxml.globals_of(fs)["tongdai_timezone"] in zones


def test_every_transfer_and_context_reference_exists(fs):
    contexts = {c.get("name") for c in fsxml.section(fs, "dialplan").iter("context")}
    for a in fsxml.section(fs, "dialplan").iter():
        if a.tag in ("action", "anti-action"):
            data = a.get("data", "")
            m = re.search(r"\bXML (\S+)", data)
            if m and "$" not in m.group(1):
                assert m.group(1) in contexts, data
    for dom in fsxml.section(fs, "directory").iter("domain"):
        for v in dom.iter("variable"):
            if v.get("name") == "user_context":
                assert v.get("value") in contexts
    for p in profiles(fs).values():
        assert fsxml.params(p.find("settings"))["context"] in contexts


def test_outbound_caller_ids_are_never_service_numbers(fs):
    for ctx in fsxml.section(fs, "dialplan").iter("context"):
        for cond in ctx.iter("condition"):
            for a in cond.iter("action"):
                m = re.match(r"effective_caller_id_number=(.*)", a.get("data", ""))
                if m and ctx.get("name", "").endswith("_outbound"):
                    if m.group(1) == "$1":  # a captured number: the condition's pattern rules
                        assert cond.get("expression") == r"^(0[2-9][0-9]{8,9})$"
                    else:
                        assert re.fullmatch(r"0[2-9][0-9]{8,9}", m.group(1)), m.group(1)
