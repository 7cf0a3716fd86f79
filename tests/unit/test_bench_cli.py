"""`tongdai bench` convention and the CLI's clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.bench import check_units

pytestmark = pytest.mark.contract
TONGDAI = [sys.executable, "-m", "deploy.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*TONGDAI, *args], capture_output=True, text=True, timeout=timeout)


def test_bench_list_names_the_benchmarks():
    result = run("bench", "--list")
    assert result.returncode == 0
    assert "contract" in result.stdout.split()


def test_bench_prints_figures_with_units_on_the_last_line_and_appends_results(tmp_path: Path):
    results = tmp_path / "results.jsonl"
    result = run("bench", "contract", "--quick", "--results", str(results))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["encode_per_s"] > 0 and figures["decode_per_s"] > 0
    assert check_units(figures) == []
    record = json.loads(results.read_text().splitlines()[-1])
    assert record["benchmark"] == "contract" and record["figures"] == figures


def test_unit_check_flags_keys_without_units():
    assert check_units({"p99_ms": 1, "throughput": 2, "rows_per_s": 3}) == ["throughput"]


def test_unknown_benchmark_and_unknown_stack_action_fail_clearly():
    result = run("bench", "nope")
    assert result.returncode == 2 and "no benchmark 'nope'" in result.stderr
    result = run("stack", "sideways")
    assert result.returncode == 2 and "unknown action 'sideways'" in result.stderr
