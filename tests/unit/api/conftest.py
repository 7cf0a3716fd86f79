"""A real app (create_app) on an in-memory bus: every test gets its own."""
from __future__ import annotations

import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import MemoryBus

SECRET = "unit-test-secret-" + "x" * 32


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def app(bus):
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_XML_CURL_PASSWORD": "fs-pass"})
    return create_app(s, bus, None)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(app):
    """auth(role, tenant="acme", user=...) -> headers with a fresh token."""
    tokens = app.extensions["tongdai"].tokens

    def make(role: str = "admin", tenant: str = "acme", user: str | None = None) -> dict:
        token, _ = tokens.mint(tenant, role, user or f"{role}-user")
        return {"Authorization": f"Bearer {token}"}

    return make
