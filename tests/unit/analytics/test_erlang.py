"""Erlang C and Erlang A (analytics/erlang.py) against reference values: published Erlang
B tables, exact M/M/c results, and the identities Erlang A must meet (patience as long as
the handle time makes it an infinite-server queue; endless patience makes it Erlang C)."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from analytics import erlang

pytestmark = pytest.mark.analytics


@pytest.mark.parametrize("load, n, blocking", [
    (10, 10, 0.2146),  # Erlang B table: 10 erlangs on 10 circuits
    (1, 1, 0.5),  # B(1, 1) = 1 / (1 + 1)
    (2, 3, 0.2105),  # (8/6) / (1 + 2 + 2 + 8/6) = 4/19
])
def test_erlang_b_matches_the_tables(load, n, blocking):
    assert erlang.erlang_b(load, n) == pytest.approx(blocking, abs=5e-5)


def test_erlang_c_of_mmc_with_three_erlangs_on_five_agents_is_81_over_343():
    # P(wait) = (A^c/c! · c/(c−A)) / (Σ_{k<c} A^k/k! + A^c/c! · c/(c−A)), exactly 81/343.
    a, c = Fraction(3), 5
    top = a**c / math.factorial(c) * c / (c - a)
    exact = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    assert exact == Fraction(81, 343)
    assert erlang.erlang_c(3, 5) == pytest.approx(float(exact), rel=1e-12)
    # Wq = C / (cμ − λ) = (81/343) / 2 handle times; Lq = λ Wq.
    assert erlang.asa_c(1 / 60, 180, 5) == pytest.approx(81 / 343 / 2 * 180)


def test_service_level_and_staffing_of_a_classic_half_hour():
    # 360 calls in 30 minutes, 240 s handle time: 48 erlangs.
    rate = 360 / 1800
    assert erlang.erlang_c(48, 55) == pytest.approx(0.2387, abs=1e-4)
    assert erlang.service_level_c(rate, 240, 55, 15) == pytest.approx(
        1 - erlang.erlang_c(48, 55) * math.exp(-7 * 15 / 240))
    need = erlang.agents_c(rate, 240, 0.8, 20)
    assert erlang.service_level_c(rate, 240, need, 20) >= 0.8 > \
        erlang.service_level_c(rate, 240, need - 1, 20)
    assert erlang.service_level_c(rate, 240, 48, 20) == 0.0, "n ≤ load: the queue never ends"
    assert erlang.agents_c(0, 240, 0.8, 20) == 0


def _poisson(load: float, j: int) -> float:
    return math.exp(j * math.log(load) - load - math.lgamma(j + 1))


@pytest.mark.parametrize("load, n", [(48, 55), (5, 4), (20, 25)])
def test_erlang_a_with_patience_equal_to_handle_time_is_an_infinite_server_queue(load, n):
    """θ = μ: every caller present leaves at rate μ whether served or waiting, so the number
    present is Poisson(A): P(wait) = P(N ≥ n), P(abandon) = θ E[(N − n)+] / λ."""
    aht = 240.0
    a = erlang.erlang_a(load / aht, aht, aht, n, 20)
    tail = range(n, n + 400)
    assert a.p_wait == pytest.approx(sum(_poisson(load, j) for j in tail), rel=1e-9)
    assert a.p_abandon == pytest.approx(
        sum((j - n) * _poisson(load, j) for j in tail) / aht / (load / aht), rel=1e-9)


def test_erlang_a_with_endless_patience_is_erlang_c():
    rate, aht = 0.2, 240.0
    a = erlang.erlang_a(rate, aht, 1e9, 55, 15)
    assert a.p_wait == pytest.approx(erlang.erlang_c(48, 55), rel=1e-5)
    assert a.service_level == pytest.approx(erlang.service_level_c(rate, aht, 55, 15), rel=1e-5)
    assert a.mean_wait_s == pytest.approx(erlang.asa_c(rate, aht, 55), rel=1e-4)
    assert a.p_abandon < 1e-6


def test_erlang_a_service_level_ends_at_zero_and_infinite_targets():
    rate, aht, patience, n = 0.2, 240.0, 90.0, 44  # overloaded: 48 erlangs on 44 agents
    assert erlang.erlang_a(rate, aht, patience, n, 0).service_level == pytest.approx(
        1 - erlang.erlang_a(rate, aht, patience, n, 0).p_wait, abs=1e-9)
    late = erlang.erlang_a(rate, aht, patience, n, 10_000)
    assert late.service_level == pytest.approx(1 - late.p_abandon, abs=1e-6)
    assert 0 < late.p_abandon < 1, "stable with fewer agents than erlangs: callers give up"


def test_abandonment_means_fewer_agents_for_the_same_target():
    rate, aht = 0.2, 240.0
    c = erlang.agents_c(rate, aht, 0.8, 20)
    a = erlang.agents_a(rate, aht, 120.0, 0.8, 20)
    assert a <= c
    assert erlang.erlang_a(rate, aht, 120.0, a, 20).service_level >= 0.8 > \
        erlang.erlang_a(rate, aht, 120.0, a - 1, 20).service_level
    assert erlang.agents_a(0, aht, 120.0, 0.8, 20) == 0


@pytest.mark.parametrize("call, field", [
    (lambda: erlang.agents_c(-1, 240, 0.8, 20), "rate_per_s"),
    (lambda: erlang.agents_c(1, 0, 0.8, 20), "aht_s"),
    (lambda: erlang.erlang_a(1, 240, 0, 5, 20), "patience_s"),
    (lambda: erlang.erlang_a(1, 240, 60, 0, 20), "n"),
])
def test_bad_inputs_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()
