"""`tongdai db` against the local stack's server."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = [pytest.mark.analytics, pytest.mark.stack]


def tongdai(*args: str, database: str, port: int, password: str = ""
            ) -> subprocess.CompletedProcess:
    env = dict(os.environ, TONGDAI_CLICKHOUSE_DATABASE=database,
               TONGDAI_CLICKHOUSE_PORT=str(port), TONGDAI_CLICKHOUSE_PASSWORD=password)
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_db_migrate_status_and_retention_dry_run(local_stack):
    name = f"t_cli_{uuid.uuid4().hex[:8]}"
    port, pw = local_stack.clickhouse_tcp_port, local_stack.clickhouse_password
    try:
        first = tongdai("db", "migrate", database=name, port=port, password=pw)
        assert first.returncode == 0, first.stderr
        assert "10 migration(s) applied" in first.stdout  # 10: a callback on its call
        again = tongdai("db", "migrate", database=name, port=port, password=pw)
        assert again.returncode == 0 and "0 migration(s) applied" in again.stdout
        status = tongdai("db", "status", database=name, port=port, password=pw)
        assert status.returncode == 0 and "PENDING" not in status.stdout
        dry = tongdai("db", "drop-partitions", "--before", "2026-01", database=name, port=port,
                      password=pw)
        assert dry.returncode == 0 and "dry run" in dry.stdout
        bad = tongdai("db", "drop-partitions", "--before", "soon", "--yes", database=name,
                      port=port, password=pw)
        assert bad.returncode == 2 and "YYYYMM" in bad.stderr
    finally:
        local_stack.clickhouse_client().execute(f"DROP DATABASE IF EXISTS {name}")


def test_bad_settings_name_the_variable():
    env = dict(os.environ, TONGDAI_CLICKHOUSE_PORT="99999")
    result = subprocess.run([sys.executable, "-m", "deploy.cli", "db", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "TONGDAI_CLICKHOUSE_PORT" in result.stderr
    assert "Traceback" not in result.stderr
