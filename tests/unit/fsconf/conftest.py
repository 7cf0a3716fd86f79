"""The product's FreeSWITCH configuration, rendered by its own start script and loaded."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.unit.fsconf import fsxml

REPO = Path(__file__).resolve().parents[3]
FS_CONF = REPO / "fs-conf"
START = FS_CONF / "bin" / "tongdai-freeswitch"
ESL_PASSWORD = "test-esl-password-0123"
XML_CURL_PASSWORD = "test-xml-curl-secret"


def render(target: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `tongdai-freeswitch --render-only` into `target` with this environment."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TONGDAI_FS_CONF_DIR": str(target),
               **env}
    return subprocess.run(["sh", str(START), "--render-only"], env=environ,
                          capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="session")
def conf_dir(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("fs-conf")
    done = render(target, TONGDAI_FS_ESL_PASSWORD=ESL_PASSWORD,
                  TONGDAI_API_XML_CURL_PASSWORD=XML_CURL_PASSWORD,
                  TONGDAI_FS_ESL_LISTEN_IP="10.0.0.5", TONGDAI_FS_ESL_ALLOW_CIDR="10.0.0.0/24",
                  TONGDAI_FS_API_URL="http://api:8080/")
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture(scope="session")
def fs(conf_dir):
    """The whole configuration tree, as FreeSWITCH would read it."""
    return fsxml.load(conf_dir / "freeswitch.xml")
