"""`tongdai bench acd --freeswitch --quick` (issue 15): the product's queue and a
mod_callcenter queue on one real switch with SIPp agents, the same load on each. Checks
what must hold whatever the machine's load (every caller of each side queued and bridged,
no answered agent leg lost or left without a caller, nothing left on the switch, the
figures' convention), never the timings. The bench starts its own switch, API, worker and
bridge (it needs mod_callcenter loaded), so it uses no `product` fixture."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deploy.bench import check_units

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def test_both_queues_serve_every_caller_and_strand_no_agent(switch_prefix, running_stack,
                                                            tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "bench", "acd", "--quick",
         "--results", str(tmp_path / "results.jsonl"), "--freeswitch", str(switch_prefix)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert check_units(figures) == []
    assert {"load1_start_cores", "load1_end_cores"} <= set(figures)
    for side in ("tongdai", "mod_callcenter"):
        key = f"cps10_{side}"
        calls = figures[f"{key}_calls_count"]
        assert calls > 0
        assert figures[f"{key}_queued_count"] == calls, (side, done.stderr[-3000:])
        assert figures[f"{key}_bridged_count"] == calls, (side, done.stderr[-3000:])
        assert figures[f"{key}_agent_legs_count"] >= calls
        assert figures[f"{key}_lost_bridges_count"] == 0, (side, done.stderr[-3000:])
        assert figures[f"{key}_orphaned_legs_count"] == 0, (side, done.stderr[-3000:])
        assert figures[f"{key}_channels_left_count"] == 0
        # measured, whatever the value: every bridged caller had an agent leg created
        assert figures[f"{key}_offer_p50_ms"] > 0 and figures[f"{key}_connect_p50_ms"] > 0
    assert {"cps10_offer_p50_ratio", "cps10_offer_p99_ratio", "cps10_connect_p99_ratio"} \
        <= set(figures)
