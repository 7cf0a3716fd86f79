"""Query parameters: bound by clickhouse-driver on a server, rendered by `render` for chdb.

The same SQL and values must select the same rows both ways, on the same data: the server
answers each query once with the driver's binding and once with the rendered text, and
chdb (which only gets the rendered text) answers it on the same rows. Each answer is also
checked against the rows computed here, so two equally wrong forms cannot agree."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from analytics.db import Database, NativeDatabase, render

from .conftest import chdb_session

pytestmark = [pytest.mark.analytics]

UTC = dt.timezone.utc
T0 = 1_795_305_600  # 2026-11-22 00:00 UTC

# Values a home-made quote or a driver could get wrong: quotes, backslashes, control
# characters, `%` (the driver substitutes with Python's % operator), placeholder look-alikes,
# non-ASCII text and an injection attempt.
TEXTS = ["it's", "a\\b", "a\\'b", "line\nbreak", "tab\there", "100%", "%(v)s", "%%", "%s",
         "Nguyễn Thị Minh Khai", "'; DROP TABLE x; --", "back\\", "😀 emoji", "\r\x07\x0b\x0c"]
ROWS = [(text, i, T0 + 3600 * i) for i, text in enumerate(TEXTS)]


def _texts(pred: Callable[[str, int, int], bool]) -> list[tuple[Any, ...]]:
    return [(s,) for s, n, at in sorted(ROWS) if pred(s, n, at)]


# (SQL with {t} for the table, parameters, the rows it must return)
CASES: list[tuple[str, dict[str, Any], list[tuple[Any, ...]]]] = [
    *[("SELECT s FROM {t} WHERE s = %(v)s ORDER BY s", {"v": text}, [(text,)])
      for text in TEXTS],
    ("SELECT s FROM {t} WHERE s IN %(vs)s ORDER BY s", {"vs": set(TEXTS[:7])},
     _texts(lambda s, n, at: s in TEXTS[:7])),
    ("SELECT s FROM {t} WHERE s IN %(vs)s ORDER BY s", {"vs": ("100%",)}, [("100%",)]),
    ("SELECT s FROM {t} WHERE (s, n) IN %(keys)s ORDER BY s",
     {"keys": {(TEXTS[0], 0), (TEXTS[3], 3), (TEXTS[3], 4)}}, [(TEXTS[0],), (TEXTS[3],)]),
    ("SELECT s FROM {t} WHERE at >= toDateTime(%(lo)s) AND at < toDateTime(%(hi)s) "
     "ORDER BY s", {"lo": dt.datetime(2026, 11, 22, 9, tzinfo=dt.timezone(dt.timedelta(hours=7))),
                    "hi": T0 + 3600 * 5},
     _texts(lambda s, n, at: T0 + 2 * 3600 <= at < T0 + 5 * 3600)),
    # A `%` of the SQL itself (modulo, a literal) beside placeholders.
    ("SELECT s FROM {t} WHERE n % 2 = %(odd)s AND position(s, '%') = 0 ORDER BY s",
     {"odd": True}, _texts(lambda s, n, at: n % 2 == 1 and "%" not in s)),
    ("SELECT s FROM {t} WHERE has(%(arr)s, s) AND n < %(n)s ORDER BY s",
     {"arr": ["it's", "a\\b", "absent"], "n": 2.5}, [("a\\b",), ("it's",)]),
]


def _create(db: Database, database: str) -> str:
    db.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    table = f"{database}.params_check"
    db.execute(f"CREATE TABLE {table} (s String, n Int64, at DateTime) ENGINE = Memory")
    db.insert(table, ("s", "n", "at"), [(s, n, dt.datetime.fromtimestamp(at, UTC))
                                         for s, n, at in ROWS])
    return table


@pytest.fixture
def server(local_stack) -> Iterator[tuple[NativeDatabase, str]]:
    name = f"t_params_{uuid.uuid4().hex[:8]}"
    db = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port, name,
                        local_stack.clickhouse_user, local_stack.clickhouse_password)
    try:
        yield db, _create(db, name)
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.close()


@pytest.fixture
def chdb() -> Iterator[tuple[Database, str]]:
    db, name = chdb_session(), f"t_params_{uuid.uuid4().hex[:8]}"
    try:
        yield db, _create(db, name)
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")


def test_the_driver_binds_what_render_renders_on_the_same_data(server, chdb):
    sdb, stable = server
    cdb, ctable = chdb
    for sql, params, want in CASES:
        bound = sdb.query(sql.format(t=stable), params)
        rendered = [tuple(r) for r in sdb._run(render(sql.format(t=stable), params))]
        in_chdb = cdb.query(sql.format(t=ctable), params)
        assert bound == want, (sql, params)
        assert rendered == bound, (sql, params)
        assert in_chdb == bound, (sql, params)


def test_the_bound_form_refuses_what_render_refuses(server):
    sdb, table = server
    with pytest.raises(KeyError, match="'missing'"):
        sdb.query(f"SELECT s FROM {table} WHERE s = %(missing)s", {"v": 1})
    with pytest.raises(ValueError, match="empty set"):
        sdb.query(f"SELECT s FROM {table} WHERE s IN %(vs)s", {"vs": set()})
    with pytest.raises(ValueError, match="timezone-aware"):
        sdb.query(f"SELECT s FROM {table} WHERE at >= toDateTime(%(t)s)",
                  {"t": dt.datetime(2026, 1, 1)})
