"""Issue 16: tokens die with their user, have a bounded lifetime, and the CLI mints the
least privilege unless told otherwise."""
from __future__ import annotations

import pytest

from api import settings as api_settings
from api.auth import MAX_TTL_S, Tokens
from routing.contract.environ import SettingsError

from .conftest import SECRET

pytestmark = pytest.mark.api


def _minted(client, admin, user: str, role: str = "supervisor", **extra) -> dict:
    r = client.post("/api/v1/tokens", json={"user": user, "role": role, **extra}, headers=admin)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_deleted_users_token_is_refused_and_stays_refused_if_the_user_comes_back(client, auth):
    admin = auth("admin")
    assert client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin).status_code == 200
    old = _minted(client, admin, "mai")["token"]
    assert client.get("/api/v1/queues", headers=_bearer(old)).status_code == 200
    assert client.delete("/api/v1/users/mai", headers=admin).status_code == 204
    r = client.get("/api/v1/queues", headers=_bearer(old))
    assert r.status_code == 401 and old not in r.get_data(as_text=True)
    # the same name again is a new user: the old token stays dead, a new one works
    assert client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin).status_code == 200
    assert client.get("/api/v1/queues", headers=_bearer(old)).status_code == 401
    new = _minted(client, admin, "mai")["token"]
    assert client.get("/api/v1/queues", headers=_bearer(new)).status_code == 200


def test_disabling_then_enabling_a_user_does_not_bring_its_old_tokens_back(client, auth):
    admin = auth("admin")
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    old = _minted(client, admin, "mai")["token"]
    client.put("/api/v1/users/mai", json={"role": "supervisor", "disabled": True}, headers=admin)
    assert client.get("/api/v1/queues", headers=_bearer(old)).status_code == 401
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    assert client.get("/api/v1/queues", headers=_bearer(old)).status_code == 401
    # an unrelated change (the name) keeps the tokens
    tok = _minted(client, admin, "mai")["token"]
    client.put("/api/v1/users/mai", json={"role": "supervisor", "name": "Mai"}, headers=admin)
    assert client.get("/api/v1/queues", headers=_bearer(tok)).status_code == 200


def test_an_operators_token_for_a_deleted_user_is_refused(client, auth, app):
    admin = auth("admin")
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    client.delete("/api/v1/users/mai", headers=admin)
    token, _ = app.extensions["tongdai"].tokens.mint("acme", "supervisor", "mai")
    assert client.get("/api/v1/queues", headers=_bearer(token)).status_code == 401


@pytest.mark.parametrize("ttl", [0, -1, -86400, MAX_TTL_S + 1, 10**12, 1.5, "60", True])
def test_a_zero_negative_or_unbounded_ttl_is_refused_not_defaulted(client, auth, ttl):
    admin = auth("admin")
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    r = client.post("/api/v1/tokens", json={"user": "mai", "role": "supervisor", "ttl_s": ttl},
                    headers=admin)
    assert r.status_code == 400, r.get_json()
    assert [d["field"] for d in r.get_json()["details"]] == ["ttl_s"]
    tokens = Tokens("s" * 40, 3600)
    if isinstance(ttl, int) and not isinstance(ttl, bool):
        with pytest.raises(ValueError, match="ttl_s"):
            tokens.mint("acme", "admin", "root", ttl)


def test_token_lifetimes_are_bounded(client, auth):
    admin = auth("admin")
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    now = Tokens("s" * 40, 3600)
    default = _minted(client, admin, "mai")
    _, probe = now.mint("acme", "agent", "x")
    assert default["expires_at"] - probe.expires_at <= 12 * 3600  # default 12 h, not 30 days
    assert _minted(client, admin, "mai", ttl_s=60)["expires_at"] <= probe.expires_at + 60
    with pytest.raises(SettingsError, match="TONGDAI_API_TOKEN_TTL_S"):
        api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_TOKEN_TTL_S": str(MAX_TTL_S + 1)})
    with pytest.raises(SettingsError, match="TONGDAI_API_TOKEN_TTL_S"):
        api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET, "TONGDAI_API_TOKEN_TTL_S": "0"})


def test_the_cli_mints_an_agent_token_unless_told_otherwise(capsys):
    from api import cli

    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET})
    assert cli.token(s, ["--tenant", "acme", "--user", "lan"]) == 0
    who = Tokens(SECRET, 60).verify(capsys.readouterr().out.strip())
    assert who.role == "agent"
    for ttl in ("0", "-5"):
        assert cli.token(s, ["--tenant", "acme", "--user", "lan", "--ttl-s", ttl]) == 2
        out = capsys.readouterr()
        assert out.out == "" and "ttl_s" in out.err
