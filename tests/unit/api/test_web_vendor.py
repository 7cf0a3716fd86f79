"""Browser libraries from npm served as they are (api/web/node_modules, no build step)."""
from __future__ import annotations

import pytest

from api.web import NODE_MODULES


@pytest.mark.skipif(not (NODE_MODULES / "sip.js" / "lib" / "index.js").exists(),
                    reason="npm ci --prefix api/web (deploy/local/setup.sh) has not run")
def test_the_sip_library_is_served_as_javascript_modules(client):
    r = client.get("/web/vendor/sip.js/index.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    assert b'from "./api/index.js"' in r.data
    assert client.get("/web/vendor/sip.js/api/index.js").status_code == 200


def test_nothing_else_is_served_from_node_modules(client):
    assert client.get("/web/vendor/sip.js/../package.json").status_code == 404
    assert client.get("/web/vendor/sip.js/index.d.ts").status_code == 404
    assert client.get("/web/vendor/other/index.js").status_code == 404
    assert client.get("/web/vendor/sip.js/%2e%2e/%2e%2e/package.json").status_code == 404
