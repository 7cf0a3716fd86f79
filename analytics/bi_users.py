"""Per-tenant BI users (`tongdai db bi-users`): a ClickHouse user per tenant that sees only
its own rows.

ClickHouse 18.16 (the local stack's server) has no row policies and no per-table grants:
access is per database (`allow_databases` in the users file), and a view is read with the
rights of whoever reads it, so a view of the product's tables in another database is refused
to a user who may not read the product's database (measured). Each tenant therefore gets a
database of its own, `<db>_bi_<tenant>`, with the product's schema (the same migrations, so
the same `bi_*` views) holding only its rows: materialized views copy every row of the
tenant that lands in the product's tables (`calls`, `queue_visits`, `offers`,
`agent_state_intervals`; the per-minute tables follow from their own views), and rows
written before the user existed are copied once. Raw events are not copied. The tenant's
user, `<db>_bi_<tenant>`, may read that database only, with the BI profile (readonly=1:
no writes, no settings, no table functions such as url(), remote() or file()) and a
quota per user. The same users file works on current ClickHouse servers.

The users live in one users.d file per product database, which is the state: running the
command again keeps every user's password (only its SHA-256 is stored) unless asked to
rotate it; a new or rotated password is printed once.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import migrations
from .db import Database, split_statements

#: Tables whose tenant rows are copied.
COPIED_TABLES = ("calls", "queue_visits", "offers", "agent_state_intervals")
#: The per-minute tables, fed from the product's source table as in the product database:
#: 18.16 does not run a view attached to a view's target table (measured), current servers
#: do, so the tenant database's own minute views (on its copies) are dropped.
MINUTE_TABLES = {"queue_visits": "queue_minute_stats",
                 "agent_state_intervals": "agent_minute_stats"}
#: The tenant database's views that would read its (empty or copied) tables again.
DROPPED_VIEWS = ("queue_minute_stats_mv", "agent_minute_stats_mv", "queue_events_mv")
#: How a row of each copied table is identified (a copy already made is not made again).
ROW_KEYS = {"calls": ("call_id", "version", "sign"),
            "queue_visits": ("call_id", "visit", "version", "sign"),
            "offers": ("call_id", "offer", "version", "sign"),
            "agent_state_intervals": ("agent_id", "start_us")}
PROFILE = "tongdai_bi_tenant"
QUOTA = "tongdai_bi_tenant"
_TENANT = re.compile(r"^[A-Za-z0-9_]{1,40}$")

PROFILE_SETTINGS = {
    # readonly=1, not 2: on 18.16 only 1 refuses table functions (url, remote, file, ...);
    # it also refuses per-query settings, so the limits below cannot be raised.
    "readonly": "1",
    "max_execution_time": "60",
    "max_memory_usage": "2000000000",
    "max_result_rows": "1000000",
    "result_overflow_mode": "throw",
    "max_threads": "2",
    "max_concurrent_queries_for_user": "2",
}
QUOTA_PER_HOUR = {"queries": "1000", "errors": "100", "result_rows": "20000000",
                  "read_rows": "5000000000", "execution_time": "900"}
LOOPBACK = ("127.0.0.1", "::1")


class BiUsersError(ValueError):
    """A tenant or a users file the command cannot use; the message says why."""


def tenant_database(database: str, tenant: str) -> str:
    """The database of `tenant`'s rows, which is also the name of its BI user."""
    if not _TENANT.match(tenant):
        raise BiUsersError(f"tenant {tenant!r}: a BI user needs a tenant id of 1-40 letters, "
                           f"digits or _ (it names a ClickHouse user and database)")
    return f"{database}_bi_{tenant}"


@dataclass
class BiUser:
    tenant: str
    name: str
    password_sha256: str
    networks: list[str] = field(default_factory=lambda: list(LOOPBACK))


def users_file(users_d: Path, database: str) -> Path:
    return Path(users_d) / f"{database}_bi_tenants.xml"


def read_users(path: Path, database: str) -> dict[str, BiUser]:
    """The tenants' users a users file defines ({} if there is no file)."""
    if not path.exists():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise BiUsersError(f"{path}: not a users file ({exc}); fix or remove it") from None
    found = {}
    for user in root.iterfind("./users/*"):
        allowed = user.findtext("./allow_databases/database") or ""
        prefix = f"{database}_bi_"
        tenant = allowed[len(prefix):] if allowed.startswith(prefix) else ""
        sha = user.findtext("./password_sha256_hex") or ""
        nets = [n.text or "" for n in user.iterfind("./networks/ip")] or list(LOOPBACK)
        if tenant and sha:
            found[tenant] = BiUser(tenant, user.tag, sha, nets)
    return found


def render_users(users: Iterable[BiUser], database: str) -> str:
    """The users.d file: the tenants' profile and quota, and one user per tenant."""
    root = ET.Element("yandex")
    root.append(ET.Comment(f" Written by `tongdai db bi-users` for database {database}: one "
                           f"read-only user per tenant, each allowed only its own database "
                           f"(analytics/BI.md). Passwords are stored as SHA-256 only. "))
    profile = ET.SubElement(ET.SubElement(root, "profiles"), PROFILE)
    for name, value in PROFILE_SETTINGS.items():
        ET.SubElement(profile, name).text = value
    interval = ET.SubElement(ET.SubElement(ET.SubElement(root, "quotas"), QUOTA), "interval")
    ET.SubElement(interval, "duration").text = "3600"
    for name, value in QUOTA_PER_HOUR.items():
        ET.SubElement(interval, name).text = value
    users_el = ET.SubElement(root, "users")
    for user in sorted(users, key=lambda u: u.name):
        el = ET.SubElement(users_el, user.name)
        ET.SubElement(el, "password_sha256_hex").text = user.password_sha256
        nets = ET.SubElement(el, "networks")
        for net in user.networks:
            ET.SubElement(nets, "ip").text = net
        ET.SubElement(el, "profile").text = PROFILE
        ET.SubElement(el, "quota").text = QUOTA
        ET.SubElement(ET.SubElement(el, "allow_databases"), "database").text = user.name
    ET.indent(root, space="    ")
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_users(path: Path, users: Iterable[BiUser], database: str) -> None:
    """Write the file atomically, readable by its owner only (the server runs as it).

    The server notices a users file changed by its modification time in whole seconds
    (ClickHouse 18.16's ConfigReloader): a file rewritten in the same second as the last
    version it read is never reloaded. So the new file's time is moved past the old one's
    second when they would share it (`bi-users` run twice within a second: the second
    tenant's user was unknown to the server for good)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before = int(path.stat().st_mtime)
    except FileNotFoundError:
        before = None
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(render_users(users, database))
    if before is not None and int(tmp.stat().st_mtime) <= before:
        os.utime(tmp, (before + 1, before + 1))
    tmp.replace(path)


class _Named:
    """`db` aimed at another database of the same server."""

    def __init__(self, inner: Database, database: str):
        self._inner = inner
        self.database = database

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _columns(db: Database, database: str, table: str) -> list[str]:
    """Columns a row copy must carry: all but MATERIALIZED/ALIAS ones."""
    return [r[0] for r in db.query(
        "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')", {"db": database, "t": table})]


def _exists(db: Database, database: str, table: str) -> bool:
    return bool(db.query("SELECT count() FROM system.tables WHERE database = %(db)s "
                         "AND name = %(t)s", {"db": database, "t": table})[0][0])


def _minute_select(minute_table: str, source_db: str, condition: str) -> str:
    """The product's own SELECT of a per-minute view (migrations), reading `source_db` and
    only rows that meet `condition`."""
    head = f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{minute_table}_mv TO "
    for statement in split_statements(migrations._MINUTE_STATS):
        if statement.startswith(head):
            select = statement.split(" AS\n", 1)[1].replace("{db}.", f"{source_db}.")
            if "\nWHERE " in select:
                return select.replace("\nWHERE ", f"\nWHERE {condition} AND ", 1)
            return select.replace("\nGROUP BY ", f"\nWHERE {condition}\nGROUP BY ", 1)
    raise RuntimeError(f"no view {minute_table}_mv in the migrations")


def build_tenant_database(db: Database, tenant: str,
                          log: Callable[[str], None] = lambda _: None) -> str:
    """Create or bring up to date `tenant`'s database: the product's migrations, a copy
    view per copied table, and a one-off copy of the rows written before the view."""
    target = tenant_database(db.database, tenant)
    tdb = _Named(db, target)
    migrations.migrate(tdb)
    for view in DROPPED_VIEWS:
        db.execute(f"DROP TABLE IF EXISTS {target}.{view}")
    mine = "tenant = %(tenant)s"
    for table in COPIED_TABLES:
        view = f"copy_{table}"
        if _exists(db, target, view):
            continue
        # Only the tenant database's columns: a column a later migration adds to the
        # product's table is not copied until this runs again (never a failing insert).
        columns = [c for c in _columns(db, target, table)
                   if c in set(_columns(db, db.database, table))]
        cols = ", ".join(columns)
        db.execute(f"CREATE MATERIALIZED VIEW {target}.{view} TO {target}.{table} AS "
                   f"SELECT {cols} FROM {db.database}.{table} WHERE {mine}",
                   {"tenant": tenant})
        minute = MINUTE_TABLES.get(table)
        if minute:
            db.execute(f"CREATE MATERIALIZED VIEW {target}.copy_{minute} TO {target}.{minute} "
                       f"AS {_minute_select(minute, db.database, mine)}", {"tenant": tenant})
        # The rows written before the views: those not copied yet (a row the views copied
        # meanwhile is not copied twice), the minute figures from the same rows first.
        key = ", ".join(ROW_KEYS[table])
        not_copied = f"{mine} AND ({key}) NOT IN (SELECT {key} FROM {target}.{table})"
        if minute:
            db.execute(f"INSERT INTO {target}.{minute} "
                       f"{_minute_select(minute, db.database, not_copied)}", {"tenant": tenant})
        db.execute(f"INSERT INTO {target}.{table} ({cols}) SELECT {cols} "
                   f"FROM {db.database}.{table} WHERE {not_copied}", {"tenant": tenant})
        log(f"{target}: {table} copied and followed")
    return target


def tenant_databases(db: Database) -> list[str]:
    """The tenants' databases of the product database `db` (by name)."""
    prefix = f"{db.database}_bi_"
    return sorted(r[0] for r in db.query("SELECT name FROM system.databases")
                  if r[0].startswith(prefix) and _TENANT.match(r[0][len(prefix):]))


def tenants_with_databases(db: Database) -> list[str]:
    """The tenants that have a BI database beside the product database `db`."""
    return [name[len(f"{db.database}_bi_"):] for name in tenant_databases(db)]


def new_password() -> str:
    return secrets.token_urlsafe(24)


def sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def sync(db: Database, users_d: Path, add: Iterable[str] = (), remove: Iterable[str] = (),
         rotate: Iterable[str] = (), networks: list[str] | None = None,
         log: Callable[[str], None] = lambda _: None) -> dict[str, str]:
    """Make the users file and the tenants' databases match: every tenant already in the
    file, plus `add`, minus `remove`. Returns {user: password} of users whose password is
    new (created or rotated): shown once, never stored in clear."""
    path = users_file(users_d, db.database)
    users = read_users(path, db.database)
    for tenant in remove:
        if users.pop(tenant, None) is None:
            raise BiUsersError(f"tenant {tenant!r} has no BI user in {path}")
    unknown = set(rotate) - set(users) - set(add)
    if unknown:
        raise BiUsersError(f"no BI user to rotate for {', '.join(sorted(unknown))}")
    shown: dict[str, str] = {}
    for tenant in sorted({*users, *add}):
        name = tenant_database(db.database, tenant)
        user = users.get(tenant)
        if user is None or tenant in set(rotate):
            password = new_password()
            shown[name] = password
            user = BiUser(tenant, name, sha256(password),
                          list(networks or (user.networks if user else LOOPBACK)))
        elif networks:
            user.networks = list(networks)
        users[tenant] = user
        build_tenant_database(db, tenant, log)
    write_users(path, users.values(), db.database)
    for tenant in remove:  # after the file: the user is gone before its rows are
        db.execute(f"DROP DATABASE IF EXISTS {tenant_database(db.database, tenant)}")
    log(f"{path}: {len(users)} tenant user(s)")
    return shown
