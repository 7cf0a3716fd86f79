"""`tongdai worker` waits a bounded time for Kafka, then fails with a clear error."""
from __future__ import annotations

import socket
import time

from streams import cli


def test_a_broker_that_never_answers_is_retried_then_named(monkeypatch, capsys, caplog):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TONGDAI_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("TONGDAI_KAFKA_WAIT_S", "8")
    started = time.monotonic()
    assert cli.main([]) == 2
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert f"Kafka at 127.0.0.1:{port} was not usable within 8 s" in err
    assert any("trying again" in r.getMessage() for r in caplog.records)
    assert elapsed < 30


def test_a_bad_wait_is_refused_naming_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("TONGDAI_KAFKA_WAIT_S", "0")
    assert cli.main([]) == 2
    assert "TONGDAI_KAFKA_WAIT_S" in capsys.readouterr().err
