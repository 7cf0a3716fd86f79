"""The browser softphones' secure WebSocket: the internal profile's wss binding, its port
and its certificate as settings of the start script."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import ESL_PASSWORD, render

pytestmark = pytest.mark.fsconf


def _settings(fs, profile: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in fs.find(f".//profile[@name='{profile}']/settings").iter("param"):
        out.setdefault(p.get("name"), []).append(p.get("value"))
    return out


def test_the_internal_profile_takes_browsers_over_secure_websocket(fs, conf_dir):
    s = _settings(fs, "internal")
    assert s["wss-binding"] == ["127.0.0.1:7443"]  # the SIP IP, TONGDAI_FS_WSS_PORT
    # a browser's ICE candidates from the WAN, the LAN and this host
    assert s["apply-candidate-acl"] == ["wan.auto", "localnet.auto", "loopback.auto"]
    assert s["inbound-reg-force-matching-username"] == ["true"]
    assert s["accept-blind-reg"] == ["false"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the certificate")
def test_without_a_certificate_a_self_signed_one_is_made_once(tmp_path):
    done = render(tmp_path, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD, TONGDAI_FS_WSS_PORT="7555",
                  TONGDAI_FS_EXT_IP="10.1.2.3")
    assert done.returncode == 0, done.stderr
    assert "self-signed certificate for 10.1.2.3" in done.stderr
    pem = (tmp_path / "runtime" / "tls" / "wss.pem").read_text()
    assert "BEGIN CERTIFICATE" in pem and "PRIVATE KEY" in pem
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "runtime" / "tls" / "wss.crt"),
                           "-noout", "-text"], capture_output=True, text=True).stdout
    assert "IP Address:10.1.2.3" in text
    assert 'tongdai_wss_port=7555' in (tmp_path / "runtime" / "node.xml").read_text()
    again = render(tmp_path, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD)
    assert again.returncode == 0 and "self-signed" not in again.stderr
    assert (tmp_path / "runtime" / "tls" / "wss.pem").read_text() == pem  # kept


def test_a_certificate_and_key_given_are_the_bindings(tmp_path):
    cert, key = tmp_path / "pbx.crt", tmp_path / "pbx.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    out = tmp_path / "conf"
    done = render(out, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD, TONGDAI_FS_TLS_CERT=str(cert),
                  TONGDAI_FS_TLS_KEY=str(key))
    assert done.returncode == 0, done.stderr
    assert (out / "runtime" / "tls" / "wss.pem").read_text() == cert.read_text() + key.read_text()


@pytest.mark.parametrize("env, rule", [
    ({"TONGDAI_FS_TLS_CERT": "/nonexistent.crt", "TONGDAI_FS_TLS_KEY": "/nonexistent.key"},
     "TONGDAI_FS_TLS_CERT=/nonexistent.crt: cannot read it"),
    ({"TONGDAI_FS_WSS_PORT": "74x3"}, "TONGDAI_FS_WSS_PORT: must be a port number"),
])
def test_bad_settings_are_refused_naming_the_variable(tmp_path, env, rule):
    done = render(tmp_path, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD, **env)
    assert done.returncode == 2 and rule in done.stderr, done.stderr


def test_a_key_that_is_not_one_is_refused(tmp_path):
    cert = tmp_path / "pbx.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    done = render(tmp_path / "conf", TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD,
                  TONGDAI_FS_TLS_CERT=str(cert), TONGDAI_FS_TLS_KEY=str(cert))
    assert done.returncode == 2 and "TONGDAI_FS_TLS_KEY" in done.stderr
