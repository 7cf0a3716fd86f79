"""One small interface over the two ClickHouse engines tongdai runs on.

`NativeDatabase` speaks the native protocol to a server (clickhouse-driver; the local
stack runs ClickHouse 18.16); `ChdbDatabase` runs the current engine in-process (chdb).
Migrations, the sink's writer and the report queries only use `Database`, so the same SQL
is exercised on both ends of the supported range.

Queries name their parameters `%(name)s`. On a server, clickhouse-driver binds them
(it escapes each value itself; 18.16 has no server-side parameters, so the driver does
it client-side). chdb binds only typed `{name:Type}` placeholders, which 18.16 does not
know, so for chdb the same SQL is rendered by `render`; a test checks both forms give
equal results on the same data. Rows to insert are always passed as data, never
formatted into SQL text.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import orjson


class DatabaseError(RuntimeError):
    """ClickHouse refused a statement or could not be reached."""


class Database(Protocol):
    """What analytics needs from a ClickHouse engine."""

    database: str

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    def version(self) -> tuple[int, ...]: ...

    def close(self) -> None: ...


_PARAM = re.compile(r"%\((\w+)\)s")


def quote(value: Any) -> str:
    """A SQL literal for `value` (strings escaped; datetimes as UTC epoch seconds).
    For chdb only (see the module's docstring); a server gets `bind`'s values."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes given to queries must be timezone-aware")
        return str(int(value.timestamp()))
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (tuple, set, frozenset)):  # a set of values, for `x IN %(xs)s`
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        if not items:
            raise ValueError("an empty set cannot be used with IN")
        return "(" + ", ".join(quote(v) for v in items) + ")"
    if isinstance(value, list):  # an array literal
        return "[" + ", ".join(quote(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as a SQL literal")


def render(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """Substitute `%(name)s` placeholders with quoted literals; a missing name raises."""
    if not params:
        return sql

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"query parameter {name!r} not given")
        return quote(params[name])

    return _PARAM.sub(sub, sql)


# clickhouse-driver substitutes with Python's `%` operator: every other `%` of the SQL
# must be doubled to reach the server as written (as `render` leaves it).
_OTHER_PERCENT = re.compile(r"%(?!\(\w+\)s)")


def bind(sql: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """The SQL and values to hand to clickhouse-driver, which escapes the values itself.

    Values are given the meaning `quote` gives them, in types the driver binds: a set
    becomes a sorted tuple (for `x IN %(xs)s`), a bool 0 or 1, a timezone-aware datetime
    its UTC epoch seconds. A name the SQL uses but `params` lacks raises KeyError, a naive
    datetime or an empty set ValueError, as `render` does."""
    if not params:
        return sql, None
    names = set(_PARAM.findall(sql))
    for name in sorted(names):
        if name not in params:
            raise KeyError(f"query parameter {name!r} not given")
    return _OTHER_PERCENT.sub("%%", sql), {n: _driver_value(params[n]) for n in names}


def _driver_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes given to queries must be timezone-aware")
        return int(value.timestamp())
    if isinstance(value, (tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        if not items:
            raise ValueError("an empty set cannot be used with IN")
        return tuple(_driver_value(v) for v in items)
    if isinstance(value, list):
        return [_driver_value(v) for v in value]
    raise TypeError(f"cannot bind {type(value).__name__} as a query parameter")


def split_statements(sql: str) -> list[str]:
    """Statements of a script separated by `;` at line ends (migrations never quote ';')."""
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", sql) if s.strip()]


class NativeDatabase:
    """A ClickHouse server over the native protocol. One client per thread (driver rule)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, database: str = "tongdai",
                 user: str = "default", password: str = "", connect_timeout: float = 3.0,
                 send_receive_timeout: float = 60.0, settings: Mapping[str, Any] | None = None):
        from clickhouse_driver import Client

        self.database = database
        self._local = threading.local()
        self._make = lambda: Client(host, port=port, user=user, password=password,
                                    connect_timeout=connect_timeout,
                                    send_receive_timeout=send_receive_timeout,
                                    settings=dict(settings or {}))
        self.address = f"{host}:{port}"

    @property
    def client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make()
        return client

    def _run(self, sql: str, data: Any = None, columnar: bool = False) -> Any:
        """`data`: rows to insert, or the values `bind` made for a query's placeholders."""
        from clickhouse_driver import errors

        try:
            if data is None:
                return self.client.execute(sql)
            return self.client.execute(sql, data, columnar=columnar)
        except (errors.Error, OSError, EOFError) as exc:
            # A broken connection must not be reused: the next call reconnects.
            self.client.disconnect()
            text = str(exc).split(" Stack trace:")[0].strip()
            raise DatabaseError(f"ClickHouse {self.address}: {text}") from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(*bind(sql, params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return [tuple(r) for r in self._run(*bind(sql, params))]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", list(rows))

    def insert_columns(self, table: str, columns: Sequence[str],
                       data: Sequence[Sequence[Any]]) -> None:
        """Insert column-wise (one sequence per column): the fastest path of the driver."""
        self._run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES", list(data),
                  columnar=True)

    def version(self) -> tuple[int, ...]:
        return parse_version(self._run("SELECT version()")[0][0])

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.disconnect()


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError


class ChdbDatabase:
    """The current ClickHouse engine in-process (chdb): one data directory per process."""

    def __init__(self, path: str | None = None, database: str = "tongdai"):
        from chdb import session

        self.database = database
        self._session = session.Session(path) if path else session.Session()
        self._lock = threading.Lock()

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        with self._lock:
            try:
                return self._session.query(sql, fmt)
            except Exception as exc:  # chdb raises plain RuntimeError with the server text
                raise DatabaseError(f"chdb: {exc}") from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(render(sql, params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        result = self._run(render(sql, params), "JSONCompact")
        raw = result.bytes()
        if not raw:
            return []
        return [tuple(r) for r in orjson.loads(raw)["data"]]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        # chdb has no data channel beside the SQL text: JSONEachRow after FORMAT is data,
        # parsed by the format reader, not SQL, so no escaping rules of SQL apply.
        body = b"\n".join(orjson.dumps(dict(zip(columns, row)), default=_json_default)
                          for row in rows)
        self._run(f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONEachRow\n"
                  + body.decode("utf-8"))

    def insert_columns(self, table: str, columns: Sequence[str],
                       data: Sequence[Sequence[Any]]) -> None:
        self.insert(table, columns, list(zip(*data)))

    def version(self) -> tuple[int, ...]:
        return parse_version(self.query("SELECT version()")[0][0])

    def close(self) -> None:
        with self._lock:
            self._session.close()


def rows_as_dicts(columns: Iterable[str], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row)) for row in rows]
