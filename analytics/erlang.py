"""Erlang C and Erlang A: how many agents a service level needs. Pure (standard library).

Erlang C (M/M/n): Poisson arrivals at rate λ, exponential handle times of mean AHT, n
agents, callers wait as long as it takes. Offered load A = λ·AHT erlangs; with n ≤ A the
queue grows without end (every caller waits).

Erlang A (M/M/n+M, Palm 1946; Garnett, Mandelbaum & Reiman 2002): the same, but each
waiting caller hangs up after an exponential patience of mean P. Always stable; closer to
a real contact center, where the callers who give up lighten the queue for the others, so
it asks for fewer agents than Erlang C at the same target.

Service level here is the share of callers answered within T seconds (abandons count
against it), the DESIGN's KPI up to its short-abandon correction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["erlang_b", "erlang_c", "service_level_c", "asa_c", "agents_c", "ErlangA",
           "erlang_a", "agents_a", "MAX_AGENTS"]

MAX_AGENTS = 5000
"""Searches stop here: a target no staffing up to this meets is reported as unmet."""


def _check(rate_per_s: float, aht_s: float) -> None:
    if rate_per_s < 0:
        raise ValueError(f"rate_per_s must be ≥ 0, got {rate_per_s}")
    if aht_s <= 0:
        raise ValueError(f"aht_s must be > 0, got {aht_s}")


def erlang_b(load: float, n: int) -> float:
    """Blocking probability of ``n`` servers offered ``load`` erlangs (stable recursion)."""
    if n < 0 or load < 0:
        raise ValueError("erlang_b: n and load must be ≥ 0")
    b = 1.0
    for k in range(1, n + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(load: float, n: int) -> float:
    """Probability that a caller waits (all ``n`` agents busy), offered ``load`` erlangs."""
    if n <= load:
        return 1.0
    b = erlang_b(load, n)
    return n * b / (n - load * (1 - b))


def service_level_c(rate_per_s: float, aht_s: float, n: int, t_s: float) -> float:
    """Share of callers answered within ``t_s`` seconds (Erlang C)."""
    _check(rate_per_s, aht_s)
    load = rate_per_s * aht_s
    if n <= load:
        return 0.0
    return 1.0 - erlang_c(load, n) * math.exp(-(n - load) * t_s / aht_s)


def asa_c(rate_per_s: float, aht_s: float, n: int) -> float:
    """Average speed of answer, seconds (Erlang C); infinite when ``n`` ≤ the load."""
    _check(rate_per_s, aht_s)
    load = rate_per_s * aht_s
    if n <= load:
        return math.inf
    return erlang_c(load, n) * aht_s / (n - load)


def agents_c(rate_per_s: float, aht_s: float, target: float, t_s: float) -> int | None:
    """Fewest agents whose Erlang C service level within ``t_s`` reaches ``target`` (0–1);
    0 when no call arrives; None when even MAX_AGENTS do not."""
    _check(rate_per_s, aht_s)
    if rate_per_s == 0:
        return 0
    n = max(1, math.floor(rate_per_s * aht_s) + 1)
    while n <= MAX_AGENTS:
        if service_level_c(rate_per_s, aht_s, n, t_s) >= target:
            return n
        n += 1
    return None


@dataclass(frozen=True)
class ErlangA:
    """What n agents give under Erlang A."""

    agents: int
    p_wait: float  # a caller finds every agent busy
    p_abandon: float  # a caller hangs up before an agent answers
    service_level: float  # answered within t_s
    mean_wait_s: float  # over every caller, abandoned ones up to when they hung up


def _logsumexp(xs: list[float]) -> float:
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def erlang_a(rate_per_s: float, aht_s: float, patience_s: float, n: int,
             t_s: float) -> ErlangA:
    """Erlang A figures for ``n`` agents. The queue's stationary distribution is summed until
    its terms are negligible (they fall faster than geometrically once the abandonment
    rate of the waiting callers passes the arrival rate); the chance of being answered
    within ``t_s`` is the time to pass each caller ahead (rate nμ + iθ with i ahead)
    weighed by the caller's own patience, computed by uniformization."""
    _check(rate_per_s, aht_s)
    if patience_s <= 0:
        raise ValueError(f"patience_s must be > 0, got {patience_s}")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    lam, mu, theta = rate_per_s, 1.0 / aht_s, 1.0 / patience_s
    if lam == 0:
        return ErlangA(n, 0.0, 0.0, 1.0, 0.0)
    load = lam / mu
    logs = [j * math.log(load) - math.lgamma(j + 1) for j in range(n + 1)]
    # Waiting states n+1, n+2, ...: ratio λ/(nμ + kθ) each; stop when negligible.
    tail: list[float] = []
    cur = logs[n]
    k = 0
    while True:
        k += 1
        cur += math.log(lam / (n * mu + k * theta))
        tail.append(cur)
        if (cur < max(logs[n], tail[0]) - 40 and n * mu + k * theta > lam) or k > 100_000:
            break
    norm = _logsumexp(logs + tail)
    p_busy = [math.exp(x - norm) for x in [logs[n]] + tail]  # states n, n+1, ...
    p_wait = sum(p_busy)
    mean_queue = sum(i * p for i, p in enumerate(p_busy))  # callers waiting
    p_abandon = theta * mean_queue / lam
    # An arrival finding n+i in the system has i ahead: phases i..0, rates r_j = nμ + jθ.
    # Answered within t = E[exp(-θV); V ≤ t] = Π r_j/(r_j+θ) · P(V' ≤ t), V' with rates
    # r_j + θ; P(V' ≤ t) for every i at once by uniformization at rate Λ.
    depth = len(p_busy)
    rates = [n * mu + j * theta + theta for j in range(depth)]
    big = rates[-1]
    move = [r / big for r in rates]
    expected = big * t_s
    steps = int(expected + 10 * math.sqrt(expected) + 20) if expected > 0 else 0
    u = [0.0] * depth  # P(absorbed within m jumps | phase i)
    within = [0.0] * depth
    log_pois = -expected  # Poisson(Λt) mass at m = 0
    for m in range(1, steps + 1):
        new = [0.0] * depth
        prev_done = 1.0
        for i in range(depth):
            new[i] = move[i] * prev_done + (1 - move[i]) * u[i]
            prev_done = u[i]
        u = new
        log_pois += math.log(expected) - math.log(m)
        w = math.exp(log_pois)
        if w:
            for i in range(depth):
                within[i] += w * u[i]
    answered_within = 1.0 - p_wait
    tilt = 1.0
    for i in range(depth):
        tilt *= (rates[i] - theta) / rates[i]
        answered_within += p_busy[i] * tilt * within[i]
    return ErlangA(agents=n, p_wait=p_wait, p_abandon=p_abandon,
                   service_level=min(1.0, answered_within), mean_wait_s=mean_queue / lam)


def agents_a(rate_per_s: float, aht_s: float, patience_s: float, target: float,
             t_s: float) -> int | None:
    """Fewest agents whose Erlang A service level within ``t_s`` reaches ``target``; 0 when
    no call arrives; None when even MAX_AGENTS do not."""
    _check(rate_per_s, aht_s)
    if rate_per_s == 0:
        return 0
    n = max(1, math.floor(rate_per_s * aht_s * 0.8))
    while n > 1 and erlang_a(rate_per_s, aht_s, patience_s, n, t_s).service_level >= target:
        n -= 1
    while n <= MAX_AGENTS:
        if erlang_a(rate_per_s, aht_s, patience_s, n, t_s).service_level >= target:
            return n
        n += 1
    return None
