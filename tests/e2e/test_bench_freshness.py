"""`tongdai bench freshness` in a minimal run: the page hooks still find the wallboard's
calls table and agent tiles, and every kind of change reaches the screen (a benchmark
that silently measured nothing after a page change would be worse than none)."""
from __future__ import annotations

import pytest

from deploy.bench import check_units
from deploy.benchmarks import freshness

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_a_short_run_times_every_kind_of_change(local_stack):
    figures = freshness.run(quick=True, argv=["--seconds", "6"])
    assert check_units(figures) == []
    for kind in freshness.KINDS:
        total = figures[f"{kind}_samples_count"] + figures[f"{kind}_excluded_count"]
        assert total > 0, kind
        if figures[f"{kind}_samples_count"]:
            assert figures[f"{kind}_missed_count"] == 0, figures
            assert 0 < figures[f"{kind}_p50_ms"] < 10_000, figures
            assert figures[f"{kind}_traced_count"] > 0, figures
