"""Replaced rows never count: sums by sign, extremes from live rows (both engines)."""
from __future__ import annotations

import pytest

from analytics import reports
from analytics.cdr import VISIT_COLUMNS
from analytics.sink import VISIT_ROW_COLUMNS

pytestmark = [pytest.mark.analytics]

T = 1_795_312_800_000_000  # 2026-11-22 09:00 +07:00


def visit(call_id, wait_ms, outcome="answered", at=T, talk=60_000):
    row = dict.fromkeys(VISIT_COLUMNS, 0)
    row.update(tenant="acme", call_id=call_id, queue="support", enqueue_us=at, caller="",
               did="", outcome=outcome, agent_id="agent-1" if outcome == "answered" else "",
               wait_ms=wait_ms, talk_ms=talk if outcome == "answered" else 0,
               overflow_target="", final=1)
    return tuple(row[c] for c in VISIT_COLUMNS)


@pytest.mark.parametrize("replaced_wait, expected_max", [(100_000, 60_000), (60_000, 60_000),
                                                         (10_000, 60_000)])
def test_a_replaced_row_neither_counts_nor_sets_the_maximum(engine_db, replaced_wait,
                                                            expected_max):
    rows = [visit("x", replaced_wait) + (1, 1), visit("x", replaced_wait) + (1, -1),
            visit("x", 50_000) + (2, 1), visit("y", 60_000) + (1, 1),
            visit("w", 0, "waiting", T + 5_000_000) + (1, 1),
            visit("w", 0, "waiting", T + 5_000_000) + (1, -1),
            visit("w", 8_000, "abandoned", T + 5_000_000) + (2, 1),
            visit("z", 0, "waiting", T + 60_000_000) + (1, 1)]
    engine_db.insert(f"{engine_db.database}.queue_visits", VISIT_ROW_COLUMNS, rows)
    (q,) = reports.realtime_queues(engine_db, "acme", minutes=10,
                                   now="2026-11-22T09:05:00+07:00")
    assert (q["offered"], q["answered"], q["abandoned"], q["waiting"]) == (4, 2, 1, 1)
    assert q["wait_answered_ms"] == 110_000 and q["talk_ms"] == 120_000
    assert q["max_wait_ms"] == expected_max
    assert q["oldest_waiting_us"] == T + 60_000_000 and q["oldest_wait_ms"] == 240_000
