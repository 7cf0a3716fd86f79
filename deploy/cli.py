"""`tongdai`: the one command of the product.

Each subcommand imports its deployable lazily, so `tongdai worker` never loads gevent
(the bridge's) and `tongdai stack status` needs neither Faust nor Flask.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


def _stack(argv: list[str]) -> int:
    from deploy.local import settings, stack

    return stack.main(argv, settings.load())


def _bridge(argv: list[str]) -> int:
    from esl_bridge import cli

    return cli.main(argv)


def _worker(argv: list[str]) -> int:
    from streams import cli

    return cli.main(argv)


def _sink(argv: list[str]) -> int:
    from analytics import cli

    return cli.sink_main(argv)


def _db(argv: list[str]) -> int:
    from analytics import cli

    return cli.db_main(argv)


def _api(argv: list[str]) -> int:
    from api import cli

    return cli.main(argv)


def _config(argv: list[str]) -> int:
    from api import cli

    return cli.config_main(argv)


def _up(argv: list[str]) -> int:
    from deploy.local import up

    return up.main(argv)


def _bench(argv: list[str]) -> int:
    from deploy import bench

    return bench.main(argv)


def _whatif(argv: list[str]) -> int:
    from deploy import whatif

    return whatif.main(argv)


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "stack": ("start, stop or check the local Kafka + ClickHouse (up|down|status|install|"
              "users|env; up --brokers 3: a Kafka cluster)", _stack),
    "bench": ("run a benchmark: tongdai bench NAME [--quick]; --list names them", _bench),
    "bridge": ("run the FreeSWITCH ESL bridge (events to Kafka, decisions to ESL); "
               "replay FILE normalizes a capture", _bridge),
    "worker": ("run a Faust routing worker", _worker),
    "sink": ("run the ClickHouse sink", _sink),
    "db": ("ClickHouse schema: tongdai db migrate|status|drop-partitions|bi-users", _db),
    "api": ("serve the API with gunicorn; tongdai api token --tenant T --user U mints a token",
            _api),
    "config": ("apply configuration: tongdai config apply FILE.yaml", _config),
    "up": ("run the whole product locally with simulated calls and the wallboard", _up),
    "whatif": ("replay a past period through the router with another configuration: "
               "tongdai whatif --tenant T --from ISO --to ISO --config FILE.yaml", _whatif),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="tongdai", description="tongdai: an event-sourced contact center for FreeSWITCH",
        epilog="\n".join(f"  {name:<8} {help_}" for name, (help_, _) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND",
                        help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    if not argv:
        parser.print_help()
        return 2
    ns = parser.parse_args(argv[:1])
    if ns.command in ("sink", "db", "api", "bench", "up"):
        # The local stack's generated ClickHouse password, unless one is given.
        from deploy.local import settings as stack_settings

        os.environ.update(stack_settings.clickhouse_defaults(os.environ))
    return COMMANDS[ns.command][1](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
