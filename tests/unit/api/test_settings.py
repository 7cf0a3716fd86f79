"""API settings: defaults, TONGDAI_ overrides, the required secret, nothing secret in repr."""
from __future__ import annotations

import pytest

from api import settings
from routing.contract.environ import SettingsError

pytestmark = pytest.mark.api
SECRET = "s3cret-" + "z" * 40


def test_defaults_and_overrides():
    s = settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET, "TONGDAI_API_PORT": "9999",
                       "TONGDAI_API_WORKERS": "3", "TONGDAI_AUDIT_TOPIC": "a.b"})
    assert (s.api_host, s.api_port, s.api_workers, s.audit_topic) == ("127.0.0.1", 9999, 3, "a.b")
    assert s.config_topic == "tongdai.config.v1" and s.live_topic == "tongdai.live.v1"


@pytest.mark.parametrize("environ, variable", [
    ({}, "TONGDAI_API_TOKEN_SECRET"),
    ({"TONGDAI_API_TOKEN_SECRET": "short"}, "TONGDAI_API_TOKEN_SECRET"),
    ({"TONGDAI_API_TOKEN_SECRET": SECRET, "TONGDAI_API_PORT": "70000"}, "TONGDAI_API_PORT"),
    ({"TONGDAI_API_TOKEN_SECRET": SECRET, "TONGDAI_API_WORKERS": "0"}, "TONGDAI_API_WORKERS"),
    ({"TONGDAI_API_TOKEN_SECRET": SECRET, "TONGDAI_CLICKHOUSE_DATABASE": "x;y"},
     "TONGDAI_CLICKHOUSE_DATABASE"),
])
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(SettingsError, match=variable):
        settings.load(environ)


def test_secrets_stay_out_of_repr():
    s = settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                       "TONGDAI_API_XML_CURL_PASSWORD": "fs-secret-pw",
                       "TONGDAI_CLICKHOUSE_PASSWORD": "ch-secret-pw"})
    for text in (repr(s), str(s)):
        assert SECRET not in text and "fs-secret-pw" not in text and "ch-secret-pw" not in text


def test_the_token_command_mints_a_token_the_api_accepts(capsys, monkeypatch):
    from api import cli
    from api.auth import Tokens

    s = settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET})
    assert cli.token(s, ["--tenant", "acme", "--user", "root", "--role", "admin"]) == 0
    out = capsys.readouterr()
    who = Tokens(SECRET, 60).verify(out.out.strip())
    assert (who.tenant, who.role, who.user) == ("acme", "admin", "root")
    assert "token_id=" in out.err and out.out.strip() not in out.err
