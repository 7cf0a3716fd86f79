"""The dependency rule (deploy/docs/STYLE.md, "The dependency rule"): routing/ is pure;
nothing imports streams/ or api/.

Checked on the source (AST), so it holds for code paths no test executes.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.routing

ROOT = Path(__file__).resolve().parents[2]
OURS = {"routing", "esl_bridge", "streams", "api", "analytics", "deploy", "tests"}
# Standard-library modules that do I/O, read the clock or the environment, or run threads.
IMPURE_STDLIB = {"os", "sys", "io", "socket", "ssl", "select", "selectors", "subprocess",
                 "threading", "multiprocessing", "asyncio", "concurrent", "signal", "time",
                 "urllib", "http", "ftplib", "smtplib", "pathlib", "shutil", "tempfile",
                 "glob", "sqlite3", "logging", "zoneinfo", "pickle", "shelve", "uuid_"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}
# The contract may use these pure third-party libraries (validation, serialization).
CONTRACT_THIRD_PARTY = {"marshmallow", "orjson"}


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: stays inside the same package
                base = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-node.level])
                found.append((node.lineno, f"{base}.{node.module or ''}".rstrip(".")))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _is_contract(path: Path) -> bool:
    return path.is_relative_to(ROOT / "routing" / "contract")


# The contract's edge helpers (clock, dead letters, JSON logs, the process's scheduling)
# read the clock, configure logging and set the kernel's scheduling class: the one impure
# module under routing/, a leaf that no routing module imports.
EDGE = ROOT / "routing" / "contract" / "edge.py"
EDGE_MODULE = "routing.contract.edge"
EDGE_STDLIB = {"logging", "time", "os"}


def test_routing_imports_only_pure_standard_library():
    bad = []
    for path in modules("routing"):
        for line, name in imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if top == "routing":
                if name == EDGE_MODULE or name.startswith(EDGE_MODULE + "."):
                    bad.append(where + " (the edge helpers are for the deployables only)")
                elif name.startswith("routing.contract") and not _is_contract(path):
                    bad.append(where + " (the policy must not depend on the wire contract)")
                continue
            if top in OURS:
                bad.append(where + " (routing imports nothing of ours)")
            elif top in IMPURE_STDLIB and not (path == EDGE and top in EDGE_STDLIB):
                bad.append(where + " (I/O, clock or environment)")
            elif top not in sys.stdlib_module_names:
                if not (_is_contract(path) and top in CONTRACT_THIRD_PARTY):
                    bad.append(where + " (third-party)")
    assert bad == []


def test_routing_never_reads_the_clock():
    bad = []
    for path in modules("routing"):
        if path == EDGE:
            continue  # its now_us() is the deployables' clock; no routing module imports it
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CLOCK_CALLS):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} calls .{node.func.attr}()")
    assert bad == []


def test_routing_uses_randomness_only_from_an_explicit_seed():
    bad = []
    for path in modules("routing"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "random" and node.attr != "Random"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses random.{node.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Random" and not node.args):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} random.Random() without seed")
    assert bad == []


@pytest.mark.parametrize("package", ["routing", "esl_bridge", "analytics", "streams", "api"])
def test_nothing_imports_streams_or_api(package: str):
    bad = []
    for path in modules(package):
        for line, name in imports(path):
            top = name.split(".")[0]
            if top in {"streams", "api"} and top != package:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_the_rule_checker_catches_a_violation(tmp_path: Path):
    # Guard against a checker that can never fail: feed it a bad module.
    sample = ROOT / "routing" / "_dependency_probe_tmp.py"
    sample.write_text("import socket\nfrom kafka import KafkaProducer\nimport time\ntime.time()\n")
    try:
        with pytest.raises(AssertionError):
            test_routing_imports_only_pure_standard_library()
        with pytest.raises(AssertionError):
            test_routing_never_reads_the_clock()
    finally:
        sample.unlink()


@pytest.mark.parametrize("where", ["routing", "routing/contract"])
def test_the_checker_refuses_the_edge_helpers_inside_routing(where: str):
    sample = ROOT / where / "_dependency_probe_tmp.py"
    sample.write_text("from routing.contract.edge import now_us\n")
    try:
        with pytest.raises(AssertionError, match="for the deployables only"):
            test_routing_imports_only_pure_standard_library()
    finally:
        sample.unlink()
