"""`tongdai bench NAME [--quick]`: the benchmark convention of the project.

A benchmark is a module under `deploy/benchmarks/` with `run(quick: bool) -> dict`.
The figures are printed as one JSON object on the last line of output, every key
carrying its unit (`p99_ms`, `events_per_s`, `rows_per_s`), and appended, with the
name, time and machine, to the results file (`var/bench/results.jsonl` by default).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import pkgutil
import sys
from pathlib import Path

from deploy import benchmarks

UNIT_SUFFIXES = ("_ms", "_us", "_ns", "_s", "_per_s", "_pct", "_bytes", "_mb", "_count",
                 "_ratio", "_rows", "_events", "_calls", "_agents", "_queues", "_iterations",
                 "_x", "_cores")
RESULTS = Path(__file__).resolve().parents[1] / "var" / "bench" / "results.jsonl"


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                  if not m.name.startswith("_"))


def check_units(figures: dict) -> list[str]:
    """Keys without a unit suffix (the convention: the unit is in every key)."""
    return [k for k in figures if not k.endswith(UNIT_SUFFIXES)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tongdai bench")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--list", action="store_true", help="name the benchmarks")
    parser.add_argument("--results", default=os.fspath(RESULTS),
                        help="file the figures are appended to (JSON lines)")
    args, extra = parser.parse_known_args(argv)
    if args.list or not args.name:
        for name in names():
            doc = (importlib.import_module(f"deploy.benchmarks.{name}").__doc__ or "").strip()
            print(f"{name:<12} {doc.splitlines()[0] if doc else ''}")
        return 0 if args.list else 2
    if args.name not in names():
        print(f"tongdai bench: no benchmark {args.name!r}; known: {', '.join(names())}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"deploy.benchmarks.{args.name}")
    kwargs = {"quick": args.quick}
    if extra:
        kwargs["argv"] = extra
    figures = module.run(**kwargs)
    bad = check_units(figures)
    if bad:
        print(f"tongdai bench: keys without a unit: {bad}", file=sys.stderr)
        return 1
    record = {"benchmark": args.name, "quick": args.quick,
              "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "figures": figures}
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(figures))
    return 0
