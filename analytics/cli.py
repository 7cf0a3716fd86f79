"""`tongdai db ...` and `tongdai sink`: the analytics commands."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from . import bi_users, migrations, settings as settings_mod
from routing.contract.edge import setup_logging
from routing.contract.environ import SettingsError

from .db import DatabaseError


def _settings(command: str):
    try:
        return settings_mod.load()
    except SettingsError as exc:
        print(f"tongdai {command}: {exc}", file=sys.stderr)
        return None


def db_main(argv: list[str]) -> int:
    """`tongdai db migrate | status | drop-partitions --before YYYY-MM`."""
    parser = argparse.ArgumentParser(prog="tongdai db", description=(
        "ClickHouse schema of the call log. Connection from TONGDAI_CLICKHOUSE_HOST, "
        "_PORT, _DATABASE, _USER, _PASSWORD."))
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("migrate", help="apply the migrations not yet applied (idempotent)")
    sub.add_parser("status", help="applied and pending migrations")
    drop = sub.add_parser("drop-partitions", help="retention: drop monthly partitions older "
                                                  "than a month")
    drop.add_argument("--before", required=True, metavar="YYYY-MM",
                      help="drop every partition of an earlier month")
    drop.add_argument("--yes", action="store_true", help="really drop (else: list only)")
    bi = sub.add_parser("bi-users", help="a read-only ClickHouse user per tenant that sees "
                                         "only its rows (analytics/BI.md)")
    bi.add_argument("tenants", nargs="*", metavar="TENANT", help="tenants to give a user "
                    "(those already in the users file are kept)")
    bi.add_argument("--all-tenants", action="store_true",
                    help="also every tenant with calls in the call log")
    bi.add_argument("--remove", action="append", default=[], metavar="TENANT",
                    help="remove the tenant's user and its database")
    bi.add_argument("--rotate", action="append", default=[], metavar="TENANT",
                    help="give the tenant's user a new password")
    bi.add_argument("--network", action="append", default=[], metavar="CIDR",
                    help="where the users may connect from (default: kept, new: loopback)")
    bi.add_argument("--users-d", metavar="DIR", help="the server's users.d folder "
                    "(default TONGDAI_CLICKHOUSE_USERS_D: the local stack's)")
    bi.add_argument("--json", action="store_true", help="print new passwords as JSON")
    args = parser.parse_args(argv)
    settings = _settings("db")
    if settings is None:
        return 2
    db = settings_mod.connect(settings)
    try:
        if args.action == "migrate":
            applied = migrations.migrate(db, log=print)
            print(f"{db.database}: {len(applied)} migration(s) applied, "
                  f"schema at version {migrations.MIGRATIONS[-1].version}")
            tenants = bi_users.tenants_with_databases(db)
            if tenants:  # the tenants' BI databases follow the product's schema
                for tenant in tenants:
                    bi_users.build_tenant_database(db, tenant, print)
                print(f"{len(tenants)} tenant BI database(s) up to date")
            return 0
        if args.action == "bi-users":
            add = list(args.tenants)
            if args.all_tenants:
                add += [r[0] for r in db.query(f"SELECT DISTINCT tenant FROM {db.database}.calls")]
            migrations.migrate(db)
            shown = bi_users.sync(db, args.users_d or settings.clickhouse_users_d, add=add,
                                  remove=args.remove, rotate=args.rotate,
                                  networks=args.network or None, log=print)
            if args.json:
                print(json.dumps(shown))
            else:
                for user, password in shown.items():
                    print(f"user {user} password {password}   (shown once; database {user})")
            return 0
        if args.action == "status":
            done = set(migrations.applied_versions(db))
            for m in migrations.MIGRATIONS:
                print(f"  {m.version:03d} {'applied' if m.version in done else 'PENDING':<8} "
                      f"{m.name}")
            return 0 if all(m.version in done for m in migrations.MIGRATIONS) else 1
        if args.action == "drop-partitions":
            if not args.yes:
                cutoff = args.before.replace("-", "")
                for table in migrations.MONTHLY_TABLES:
                    old = [p for p in migrations.partitions(db, table) if p < cutoff]
                    if old:
                        print(f"  {table}: would drop {', '.join(old)}")
                print("(dry run: add --yes to drop)")
                return 0
            dropped = migrations.drop_partitions_before(db, args.before, log=print)
            for name in bi_users.tenant_databases(db):  # the tenants' copies age the same
                dropped += migrations.drop_partitions_before(bi_users._Named(db, name),
                                                             args.before, log=print)
            print(f"dropped {len(dropped)} partition(s)")
            return 0
    except DatabaseError as exc:
        print(f"tongdai db {args.action}: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # BiUsersError is a ValueError
        print(f"tongdai db {args.action}: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    return 2


def sink_main(argv: list[str]) -> int:
    """`tongdai sink [--migrate]`: consume the event topics into ClickHouse until stopped."""
    from .sink import Sink

    parser = argparse.ArgumentParser(prog="tongdai sink", description=(
        "Consume tongdai.fs.events.v1 and tongdai.cc.events.v1 into ClickHouse (raw events, "
        "CDRs, queue visits, agent states). Offsets are committed only after each insert; "
        "while ClickHouse is down the sink pauses and retries. Settings: TONGDAI_* (see "
        "analytics/settings.py)."))
    parser.add_argument("--migrate", action="store_true",
                        help="apply pending migrations before consuming")
    args = parser.parse_args(argv)
    settings = _settings("sink")
    if settings is None:
        return 2
    setup_logging(settings.log_level)
    db = settings_mod.connect(settings)
    if args.migrate:
        migrations.migrate(db, log=print)
    sink = Sink(settings, db)
    signal.signal(signal.SIGTERM, lambda *_: sink.stop())
    signal.signal(signal.SIGINT, lambda *_: sink.stop())
    print(f"tongdai sink: {settings!r}", flush=True)
    try:
        stats = sink.run()
    finally:
        sink.close()
        db.close()
    print(json.dumps(stats.__dict__))
    return 0
