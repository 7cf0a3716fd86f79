"""The stack's failure paths: a clear message and a non-zero exit, never a hang."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import free_ports

pytestmark = pytest.mark.stack


def stack_cmd(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    ports = dict(zip(("TONGDAI_KAFKA_PORT", "TONGDAI_KAFKA_CONTROLLER_PORT",
                      "TONGDAI_CLICKHOUSE_TCP_PORT", "TONGDAI_CLICKHOUSE_HTTP_PORT"),
                     map(str, free_ports(4))))
    environ = {**os.environ, **ports, "TONGDAI_STACK_DIR": str(tmp_path / "stack"), **env}
    return subprocess.run([sys.executable, "-m", "deploy.cli", "stack", *args], env=environ,
                          capture_output=True, text=True, timeout=90)


def test_port_already_taken_is_named(tmp_path: Path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = stack_cmd(tmp_path, "up", TONGDAI_KAFKA_PORT=str(port))
    assert result.returncode == 2
    assert f"port(s) [{port}]" in result.stderr and "already in use" in result.stderr


def test_java_missing_is_named(tmp_path: Path):
    result = stack_cmd(tmp_path, "up", TONGDAI_JAVA_BIN="/nonexistent/java")
    assert result.returncode == 2
    assert "Java not found" in result.stderr and "openjdk-17" in result.stderr


def test_half_started_broker_is_reported_not_waited_on_forever(tmp_path: Path):
    # A live process in the pid file that never becomes a healthy broker.
    fake = subprocess.Popen(["sleep", "120"])
    try:
        kafka_dir = tmp_path / "stack" / "kafka"
        kafka_dir.mkdir(parents=True)
        (kafka_dir / "kafka.pid").write_text(str(fake.pid))
        result = stack_cmd(tmp_path, "up", TONGDAI_START_TIMEOUT_S="3")
    finally:
        fake.kill()
        fake.wait()
    assert result.returncode == 2
    assert "half-started" in result.stderr and "tongdai stack down" in result.stderr


def test_status_of_a_stopped_stack_is_unhealthy_with_exit_1(tmp_path: Path):
    result = stack_cmd(tmp_path, "status")
    assert result.returncode == 1
    assert "kafka" in result.stdout and "DOWN" in result.stdout


def test_bad_setting_is_named(tmp_path: Path):
    result = stack_cmd(tmp_path, "status", TONGDAI_KAFKA_PORT="ninety")
    assert result.returncode != 0
    assert "TONGDAI_KAFKA_PORT='ninety': must be an integer" in result.stderr
