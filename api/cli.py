"""`tongdai api` and `tongdai config`.

    tongdai api [serve]                      serve with gunicorn (TONGDAI_API_* settings)
    tongdai api token --tenant T --user U [--role agent|supervisor|admin] [--ttl-s N]
                                             mint a token (least privilege, agent, unless
                                             --role says otherwise; the first admin's:
                                             --role admin)
    tongdai api purge-recordings [--dry-run]
                                             delete recordings past each tenant's
                                             recording.retention_days (audited); run daily
    tongdai config apply FILE.yaml [--dry-run] [--missing-only]
                                             validate every entity, then write them
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time

from routing.contract.edge import logging_config
from routing.contract.environ import SettingsError

from . import settings as api_settings


def _settings() -> api_settings.ApiSettings | None:
    try:
        return api_settings.load()
    except SettingsError as exc:
        print(f"tongdai: {exc}", file=sys.stderr)
        return None


def serve(s: api_settings.ApiSettings) -> int:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{s.api_host}:{s.api_port}", "workers": s.api_workers,
                "threads": s.api_threads, "worker_class": "gthread",
                "timeout": s.api_timeout_s, "graceful_timeout": 10,
                "loglevel": s.log_level.lower(), "accesslog": None,
                "proc_name": "tongdai-api",
                # JSON lines, gunicorn's own too (it applies this in the master; the
                # workers it forks keep it). A logconfig_dict turns gunicorn's access
                # log on: kept quiet (below WARNING), its lines would carry query
                # strings, access tokens included.
                "logconfig_dict": logging_config(
                    s.log_level, quiet=("kafka", "gunicorn.access"),
                    take_over=("gunicorn.error",)),
            }.items():
                self.cfg.set(key, value)

        def load(self):
            from .app import create_app

            return create_app(s)

    Server().run()
    return 0


def token(s: api_settings.ApiSettings, argv: list[str]) -> int:
    from .auth import MAX_TTL_S, ROLES, Tokens

    parser = argparse.ArgumentParser(prog="tongdai api token")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", default="agent", choices=ROLES,
                        help="default: agent (the least privilege)")
    parser.add_argument("--ttl-s", type=int, default=None,
                        help=f"lifetime in seconds, 1..{MAX_TTL_S} (default "
                             f"TONGDAI_API_TOKEN_TTL_S)")
    args = parser.parse_args(argv)
    try:
        tok, claims = Tokens(s.api_token_secret, s.api_token_ttl_s).mint(
            args.tenant, args.role, args.user, args.ttl_s)
    except ValueError as exc:
        print(f"tongdai api token: {exc}", file=sys.stderr)
        return 2
    print(f"# tenant={claims.tenant} user={claims.user} role={claims.role} "
          f"token_id={claims.token_id} expires_at={claims.expires_at}", file=sys.stderr)
    print(tok)
    return 0


def purge_recordings(s: api_settings.ApiSettings, argv: list[str]) -> int:
    import datetime as dt
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from .app import Services
    from .auth import Principal
    from .bus import KafkaBus
    from .reports.retention import purge

    parser = argparse.ArgumentParser(prog="tongdai api purge-recordings")
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not s.api_recordings_dir:
        print("tongdai api purge-recordings: set TONGDAI_API_RECORDINGS_DIR", file=sys.stderr)
        return 2
    bus = KafkaBus(s.kafka_bootstrap, client_id="tongdai-purge-recordings")
    services = Services(s, bus, None)
    bus.follow(s.config_topic, services.view.apply, from_start=True)
    deadline = time.monotonic() + args.timeout_s
    while not bus.caught_up():
        if time.monotonic() > deadline:
            print(f"tongdai api purge-recordings: {s.config_topic} not read in time",
                  file=sys.stderr)
            bus.close()
            return 1
        time.sleep(0.1)

    def audit(p) -> None:
        who = Principal(p.tenant, "admin", f"cli:{getpass.getuser()}", "purge-recordings",
                        2**31)
        services.audit.record(who, "recording.purge", f"recordings/{p.day}",
                              {"files": p.files})

    today = dt.datetime.now(ZoneInfo(s.report_timezone)).date()
    done = purge(services.view, Path(s.api_recordings_dir), today, audit, args.dry_run)
    for p in done:
        print(f"{'would delete' if args.dry_run else 'deleted'} {p.tenant}/{p.day} "
              f"({p.files} file(s))")
    bus.close()
    return 0


def main(argv: list[str]) -> int:
    """`tongdai api …`."""
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    s = _settings()
    if s is None:
        return 2
    if not argv or argv[0] == "serve":
        from routing.contract.edge import schedule, setup_logging

        setup_logging(s.log_level)  # until gunicorn takes over with its own config
        schedule(s.scheduling, s.scheduling_priority)  # the master, before it forks: its workers keep the class
        return serve(s)
    if argv[0] == "token":
        return token(s, argv[1:])
    if argv[0] == "purge-recordings":
        return purge_recordings(s, argv[1:])
    print(f"tongdai api: unknown subcommand {argv[0]!r} (serve | token | purge-recordings)",
          file=sys.stderr)
    return 2


def config_main(argv: list[str]) -> int:
    """`tongdai config apply FILE.yaml [--dry-run]`."""
    parser = argparse.ArgumentParser(prog="tongdai config")
    parser.add_argument("action", choices=["apply"])
    parser.add_argument("file")
    parser.add_argument("--dry-run", action="store_true", help="validate only")
    parser.add_argument("--missing-only", action="store_true",
                        help="write only the entities the configuration never held; keep "
                             "the others as they are (an admin's changes, deletions)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="how long to wait for the config topic to be read")
    args = parser.parse_args(argv)
    s = _settings()
    if s is None:
        return 2
    from pathlib import Path

    import yaml

    from .auth import Principal
    from .bus import KafkaBus
    from .config.apply import FileError, apply
    from .config.services import ConfigService
    from .app import Services

    try:
        with open(args.file, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        print(f"tongdai config: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    tenant = doc.get("tenant") if isinstance(doc, dict) else None
    bus = KafkaBus(s.kafka_bootstrap, client_id="tongdai-config-apply")
    services = Services(s, bus, None)
    bus.follow(s.config_topic, services.view.apply, from_start=True)
    deadline = time.monotonic() + args.timeout_s
    while not bus.caught_up():
        if time.monotonic() > deadline:
            print(f"tongdai config: {s.config_topic} not read within {args.timeout_s} s "
                  f"(is Kafka at {s.kafka_bootstrap}?)", file=sys.stderr)
            bus.close()
            return 1
        time.sleep(0.1)
    who = Principal(str(tenant or ""), "admin", f"cli:{getpass.getuser()}", "config-apply",
                    2**31)
    svc: ConfigService = services.config
    try:
        outcomes = apply(svc, who, doc, dry_run=args.dry_run, missing_only=args.missing_only,
                         sounds=Path(s.api_sounds_dir) if s.api_sounds_dir else None)
    except FileError as exc:
        print(f"tongdai config: {args.file}: {exc}", file=sys.stderr)
        bus.close()
        return 1
    invalid = [o for o in outcomes if o.status in ("invalid", "failed")]
    for o in outcomes:
        line = f"{o.kind:<10} {o.entity_id:<24} {o.status}"
        if o.secret:
            line += f"  sip_password={o.secret}  (shown once)"
        print(line)
        for e in o.errors:
            print(f"    {e['field']}: {e['rule']}")
    bus.close()
    if not s.api_sounds_dir:
        print("tongdai config: sounds not checked (set TONGDAI_API_SOUNDS_DIR to the "
              "switch's sounds folder)", file=sys.stderr)
    if invalid:
        nothing = all(o.status == "invalid" for o in invalid) and not args.dry_run
        print(f"tongdai config: {len(invalid)} entities not valid"
              f"{'; nothing written' if nothing else ''}", file=sys.stderr)
        return 1
    written = sum(1 for o in outcomes if o.status in ("created", "updated"))
    print(f"{'would write' if args.dry_run else 'wrote'} {written} record(s), "
          f"{sum(1 for o in outcomes if o.status == 'unchanged')} unchanged"
          + (f", {sum(1 for o in outcomes if o.status == 'kept')} kept"
             if args.missing_only else ""))
    return 0
