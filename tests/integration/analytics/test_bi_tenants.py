"""Issue 16's ClickHouse findings, on a ClickHouse 18.16 of this module (own ports, own
folder, started with the local stack's own code, so with its users file):

* every user of the local stack has a password;
* no BI user may call a table function that reaches out (url, remote, file, ...);
* a tenant's BI user (`tongdai db bi-users`) sees only its tenant's rows, never the raw
  events nor the product's database, while the platform's analysts' user sees every tenant;
* BI users have quotas.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from analytics import migrations
from analytics.db import NativeDatabase
from analytics.scenario import Scenario, us
from analytics.sink import replay
from deploy.local import stack
from deploy.local.settings import StackSettings

from tests.integration.harness import free_ports

pytestmark = [pytest.mark.analytics, pytest.mark.stack]

DB = "tongdai"  # the product database the analysts' user is allowed
BI_VIEWS = ("bi_calls", "bi_queue_calls", "bi_offers", "bi_agent_states", "bi_queue_minute",
            "bi_agent_minute")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[StackSettings]:
    tcp, http, k1, k2 = free_ports(4)
    settings = StackSettings(stack_dir=str(tmp_path_factory.mktemp("bi") / "stack"),
                             clickhouse_tcp_port=tcp, clickhouse_http_port=http, kafka_port=k1,
                             kafka_controller_port=k2, start_timeout_s=60)
    service = stack.ClickHouse(settings, log=lambda _: None)
    service.start()
    try:
        yield settings
    finally:
        service.stop()  # only the server this fixture started (its own pid file)


def calls(db: NativeDatabase, tenant: str, *ids: str, hour: int = 9) -> None:
    s = Scenario(tenant)
    for i, call_id in enumerate(ids):
        s.queue_call(call_id, us(f"2026-11-22T{hour:02d}:{i:02d}:00+07:00"), "support",
                     f"+8491{i}", wait_s=4, ring_s=2)
    replay(db, s.events)


@pytest.fixture(scope="module")
def product(server) -> Iterator[NativeDatabase]:
    db = NativeDatabase("127.0.0.1", server.clickhouse_tcp_port, DB, server.clickhouse_user,
                        server.clickhouse_password)
    migrations.migrate(db)
    db.execute("CREATE TABLE default.elsewhere (x UInt8) ENGINE = Memory")
    calls(db, "acme", "acme-1", "acme-2")
    calls(db, "beta", "beta-1")
    yield db
    db.close()


def http(settings: StackSettings, user: str, password: str | None, sql: str) -> str:
    """The answer of the HTTP port, as a BI tool gets it; an error raises with its text."""
    params = {"user": user, "query": sql}
    if password is not None:
        params["password"] = password
    url = f"http://127.0.0.1:{settings.clickhouse_http_port}/?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(exc.read().decode()) from None


def refused(settings, user, password, sql) -> str:
    with pytest.raises(RuntimeError) as err:
        http(settings, user, password, sql)
    return str(err.value)


def bi_users(server: StackSettings, *args: str) -> dict[str, str]:
    env = dict(os.environ, TONGDAI_CLICKHOUSE_PORT=str(server.clickhouse_tcp_port),
               TONGDAI_CLICKHOUSE_DATABASE=DB,
               TONGDAI_CLICKHOUSE_PASSWORD=server.clickhouse_password,
               TONGDAI_CLICKHOUSE_USERS_D=str(server.root / "clickhouse" / "users.d"))
    done = subprocess.run([sys.executable, "-m", "deploy.cli", "db", "bi-users", *args,
                           "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_user(server: StackSettings, user: str, password: str) -> None:
    """The server reloads its users files every few seconds."""
    import time

    deadline = time.monotonic() + 60  # under load the reload came after 20 s
    while True:
        try:
            http(server, user, password, "SELECT 1")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_every_user_of_the_stack_has_a_password(server, product):
    passwords = server.clickhouse_passwords()
    assert set(passwords) == {"default", "tongdai_bi"}
    assert len(set(passwords.values())) == 2 and all(len(p) >= 24 for p in passwords.values())
    assert (server.clickhouse_passwords_file.stat().st_mode & 0o077) == 0
    users_xml = (server.root / "clickhouse" / "users.xml").read_text()
    assert "<password>" not in users_xml and passwords["default"] not in users_xml
    for user in passwords:
        assert "Password required" in refused(server, user, None, "SELECT 1")
        assert "Wrong password" in refused(server, user, "wrong-password", "SELECT 1")
        assert http(server, user, passwords[user], "SELECT 1") == "1\n"


def test_the_analysts_user_reads_every_tenant_and_nothing_reaches_out(server, product):
    bi = server.clickhouse_passwords()["tongdai_bi"]
    rows = http(server, "tongdai_bi", bi,
                f"SELECT tenant, count() FROM {DB}.bi_calls GROUP BY tenant ORDER BY tenant")
    assert rows == "acme\t2\nbeta\t1\n"
    for sql in [f"INSERT INTO {DB}.events (event_id) SELECT 'x'",
                f"SELECT * FROM url('http://127.0.0.1:{server.clickhouse_http_port}/ping', "
                f"TSV, 'x String')",
                f"SELECT * FROM remote('127.0.0.1:{server.clickhouse_tcp_port}', {DB}.calls)",
                "SELECT * FROM file('passwords.json', TSV, 'x String')",
                f"SELECT count() FROM merge('{DB}', '.*')",
                "SET readonly = 0",
                "SELECT count() FROM system.one SETTINGS max_execution_time = 100000",
                "CREATE TABLE t (x UInt8) ENGINE = Memory"]:
        assert "readonly" in refused(server, "tongdai_bi", bi, sql).lower(), sql
    # Only the product's database.
    assert "Access denied" in refused(server, "tongdai_bi", bi,
                                      "SELECT count() FROM default.elsewhere")


def test_a_tenant_user_sees_only_its_rows(server, product):
    shown = bi_users(server, "acme", "beta")
    assert set(shown) == {f"{DB}_bi_acme", f"{DB}_bi_beta"}
    assert len(set(shown.values())) == 2
    acme, beta = shown[f"{DB}_bi_acme"], shown[f"{DB}_bi_beta"]
    wait_user(server, f"{DB}_bi_acme", acme)
    wait_user(server, f"{DB}_bi_beta", beta)
    # Rows written after the user exist are followed too.
    calls(product, "acme", "acme-3", hour=10)
    calls(product, "beta", "beta-2", hour=10)

    def ask(user, password, sql):
        return http(server, f"{DB}_bi_{user}", password, sql)

    own = f"{DB}_bi_acme"
    assert ask("acme", acme, f"SELECT tenant, call_id FROM {own}.bi_calls ORDER BY call_id") \
        == "acme\tacme-1\nacme\tacme-2\nacme\tacme-3\n"
    for view in BI_VIEWS:
        tenants = ask("acme", acme, f"SELECT DISTINCT tenant FROM {own}.{view}")
        assert tenants in ("acme\n", ""), view
    # The per-minute figures are exact: one offered call per minute, three minutes.
    assert ask("acme", acme, f"SELECT sum(offered), sum(answered) FROM {own}.bi_queue_minute") \
        == "3\t3\n"
    assert ask("acme", acme, f"SELECT count() FROM {own}.bi_queue_calls") == "3\n"
    assert ask("beta", beta, f"SELECT call_id FROM {DB}_bi_beta.bi_calls ORDER BY call_id") \
        == "beta-1\nbeta-2\n"
    # Never the raw events, nor the product's database, nor another tenant's.
    assert ask("acme", acme, f"SELECT count() FROM {own}.events") == "0\n"
    for sql in [f"SELECT count() FROM {DB}.events", f"SELECT count() FROM {DB}.bi_calls",
                f"SELECT count() FROM {DB}_bi_beta.bi_calls",
                # a subquery may not read elsewhere either (no oracle on others' rows)
                f"SELECT count() FROM {own}.bi_calls WHERE toUInt64(2) IN "
                f"(SELECT count() FROM {DB}.calls WHERE tenant = 'beta')"]:
        assert "Access denied" in refused(server, own, acme, sql), sql
    for sql in [f"SELECT * FROM url('http://127.0.0.1:{server.clickhouse_http_port}/ping', "
                f"TSV, 'x String')",
                f"SELECT * FROM remote('127.0.0.1:{server.clickhouse_tcp_port}', {DB}.calls)",
                f"INSERT INTO {own}.calls (tenant) SELECT 'acme'",
                "SELECT 1 SETTINGS max_result_rows = 0"]:
        assert "readonly" in refused(server, own, acme, sql).lower(), sql
    # Again: passwords kept (nothing shown), users and rows unchanged.
    assert bi_users(server) == {}
    assert ask("acme", acme, f"SELECT count() FROM {own}.bi_calls") == "3\n"
    # Removed: the user and its database are gone.
    assert bi_users(server, "--remove", "beta") == {}
    assert product.query(f"SELECT count() FROM system.databases WHERE name = '{DB}_bi_beta'") \
        == [(0,)]


def test_bi_users_have_quotas(server, product):
    """A BI user that keeps failing is stopped by its quota (errors per hour), not the
    server: the quota is counted per user."""
    shown = bi_users(server, "quota_t")
    user, password = next(iter(shown.items()))
    wait_user(server, user, password)
    message = ""
    for _ in range(150):
        try:
            http(server, user, password, "SELECT no_such_column")
        except RuntimeError as exc:
            message = str(exc)
            if "Quota" in message:
                break
    assert "Quota for user" in message and "has been exceeded" in message
    # Another BI user is not affected.
    bi = server.clickhouse_passwords()["tongdai_bi"]
    assert http(server, "tongdai_bi", bi, "SELECT 1") == "1\n"
