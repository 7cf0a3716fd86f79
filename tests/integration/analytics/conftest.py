"""Both ends of the supported ClickHouse range: the local stack's 18.16 server (native
protocol) and the current engine in-process (chdb). Each module gets its own database."""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest

from analytics import migrations
from analytics.db import ChdbDatabase, Database, NativeDatabase
from deploy.local import stack
from deploy.local.settings import StackSettings
from tests.integration.harness import free_ports

ENGINES = ["server", "chdb"]
_chdb: dict[str, ChdbDatabase] = {}


def chdb_session() -> ChdbDatabase:
    """One chdb per test process (chdb allows one data directory per process)."""
    if "db" not in _chdb:
        _chdb["db"] = ChdbDatabase(tempfile.mkdtemp(prefix="tongdai-chdb-"), "default")
    return _chdb["db"]


class _Named:
    """A Database that targets another database name on the same engine."""

    def __init__(self, inner: Database, database: str):
        self._inner = inner
        self.database = database

    def __getattr__(self, name):
        return getattr(self._inner, name)


def make_database(request: pytest.FixtureRequest, engine: str, prefix: str) -> Database:
    name = f"t_{prefix}_{uuid.uuid4().hex[:8]}"
    if engine == "server":
        stack = request.getfixturevalue("local_stack")
        db: Database = NativeDatabase("127.0.0.1", stack.clickhouse_tcp_port, name,
                                      stack.clickhouse_user, stack.clickhouse_password)
    else:
        db = _Named(chdb_session(), name)
    migrations.migrate(db)
    return db


def drop_database(db: Database) -> None:
    db.execute(f"DROP DATABASE IF EXISTS {db.database}")
    if isinstance(db, NativeDatabase):
        db.close()


@pytest.fixture(params=ENGINES)
def engine_db(request) -> Iterator[Database]:
    """A fresh migrated database on each engine."""
    db = make_database(request, request.param, "an")
    try:
        yield db
    finally:
        drop_database(db)


@pytest.fixture
def own_clickhouse(tmp_path):
    """A throwaway ClickHouse 18.16 of this test (own ports, own data folder, own pid)."""
    tcp, http, k1, k2 = free_ports(4)
    settings = StackSettings(stack_dir=str(tmp_path / "stack"), clickhouse_tcp_port=tcp,
                             clickhouse_http_port=http, kafka_port=k1,
                             kafka_controller_port=k2, start_timeout_s=60)
    service = stack.ClickHouse(settings, log=lambda _: None)
    service.start()
    try:
        yield service
    finally:
        service.stop()  # only the server this fixture started (its own pid file)
