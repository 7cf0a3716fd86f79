"""`tongdai bench ewt`: the ACD on simulated time scores the estimated wait against what the
simulator's callers lived."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.bench import check_units
from deploy.benchmarks import ewt

pytestmark = pytest.mark.routing


def test_a_short_run_scores_estimates_against_the_ledger():
    figures = ewt.simulate(agents=6, cps=0.05, minutes=20, seed=3)
    assert figures["callers_count"] > 30 and figures["answered_count"] > 0
    assert figures["scored_at_entry_count"] > 0, "callers after the warm-up were scored"
    assert figures["router_commands_count"] >= figures["answered_count"], \
        "every answered caller was offered by the router through the simulated switch"
    assert 0 <= figures["entry_abs_error_p50_s"] <= figures["entry_abs_error_p90_s"]
    assert check_units(figures) == []
    assert ewt.simulate(agents=6, cps=0.05, minutes=20, seed=3) == figures, \
        "same seed, same run (manual clock, pure router)"


def test_the_cli_prints_one_json_object_last(tmp_path: Path):
    results = tmp_path / "r.jsonl"
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "bench", "ewt", "--quick",
                          "--results", str(results), "--", "--minutes", "15", "--agents", "5",
                          "--cps", "0.04"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["simulated_s"] == 900 and figures["agents_count"] == 5
    assert "entry_abs_error_p90_s" in figures and check_units(figures) == []
