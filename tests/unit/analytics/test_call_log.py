"""The sink's batch step (`CallLog.prepare`) against an in-memory store: updates cancel the
row they replace, restarts reload instead of writing twice, late events land."""
from __future__ import annotations

import random

import pytest

from analytics.scenario import S, Scenario, random_calls, us
from analytics.sink import (CALL_ROW_COLUMNS, EVENT_COLUMNS, VISIT_ROW_COLUMNS, CallLog,
                            Record, envelope_of_row, live_rows)

pytestmark = pytest.mark.analytics

T0 = us("2026-11-22T09:00:00+07:00")


class MemoryStore:
    """The tables as lists of dicts; answers the reload queries like ClickHouse would."""

    def __init__(self):
        self.tables: dict[str, list[dict]] = {}

    def write(self, table, columns, rows):
        self.tables.setdefault(table, []).extend(dict(zip(columns, r)) for r in rows)

    def call_events(self, keys):
        rows = self.tables.get("events", [])
        return [envelope_of_row([r[c] for c in EVENT_COLUMNS]) for r in rows
                if (r["tenant"], r["call_id"]) in keys]

    def call_rows(self, keys, lo_us, hi_us):
        pick = lambda t: [r for r in self.tables.get(t, [])  # noqa: E731
                          if (r["tenant"], r["call_id"]) in keys]
        return pick("calls"), pick("queue_visits"), pick("offers")

    def agent_events(self, tenant, agent_ids, lo_us, hi_us):
        events = [envelope_of_row([r[c] for c in EVENT_COLUMNS])
                  for r in self.tables.get("events", []) if r["type"] == "agent_state_changed"]
        return [e for e in events if e.tenant == tenant and e.payload["agent_id"] in agent_ids
                and lo_us <= e.occurred_at <= hi_us]

    def agent_written_up_to(self, tenant, agent_ids, lo_us):
        out: dict[str, int] = {}
        for r in self.tables.get("agent_state_intervals", []):
            if r["tenant"] == tenant and r["agent_id"] in agent_ids:
                out[r["agent_id"]] = max(out.get(r["agent_id"], -1), r["start_us"])
        return out

    def net(self, table="calls"):
        n: dict[str, int] = {}
        for r in self.tables.get(table, []):
            n[r["call_id"]] = n.get(r["call_id"], 0) + r["sign"]
        return n


def feed(log, store, events, batch=10):
    for i in range(0, len(events), batch):
        b = log.prepare([Record("t", 0, i + j, e) for j, e in enumerate(events[i:i + batch])])
        for table, columns, rows in b.parts():
            store.write(table, columns, rows)


def test_a_call_is_written_once_and_replaced_by_cancel_and_new_version():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, talk_s=60, wrap_s=10)
    store = MemoryStore()
    feed(CallLog(store), store, sorted(s.events, key=lambda e: e.occurred_at), batch=3)
    calls = store.tables["calls"]
    assert store.net() == {"c": 1}
    versions = [(r["version"], r["sign"]) for r in calls]
    assert versions[0] == (1, 1) and versions[-1][1] == 1
    assert all(b == (a[0], -1) for a, b in zip(versions[::2], versions[1::2]))
    (version, (row,)) = live_rows(calls)[("acme", "c")]
    assert row["disposition"] == "answered" and row["final"] == 1 and row["wrap_ms"] == 10000


def test_redelivery_after_restart_writes_nothing_new():
    s = Scenario()
    random_calls(s, 30, T0, random.Random(2))
    events = sorted(s.events, key=lambda e: e.occurred_at)
    store = MemoryStore()
    feed(CallLog(store), store, events, batch=25)
    before = {t: len(rows) for t, rows in store.tables.items()}
    feed(CallLog(store), store, events, batch=25)  # a new process re-reads everything
    after = {t: len(rows) for t, rows in store.tables.items()}
    assert after == before
    assert set(store.net().values()) == {1}


def test_a_late_event_after_restart_updates_the_row_it_finds():
    s = Scenario()
    s.queue_call("c", T0, "support", "+84911", wait_s=10, talk_s=60, wrap_s=None)
    events = sorted(s.events, key=lambda e: e.occurred_at)
    late = [e for e in events if e.type == "recording_started"]
    store = MemoryStore()
    feed(CallLog(store), store, [e for e in events if e not in late])
    (v1, (row1,)) = live_rows(store.tables["calls"])[("acme", "c")]
    assert row1["recording"] == ""
    feed(CallLog(store), store, late)
    (v2, (row2,)) = live_rows(store.tables["calls"])[("acme", "c")]
    assert v2 == v1 + 1 and row2["recording"].endswith("c.wav")
    assert store.net() == {"c": 1} and store.net("queue_visits") == {"c": 1}


def test_eviction_keeps_memory_bounded_and_results_equal():
    s = Scenario()
    random_calls(s, 40, T0, random.Random(4))
    events = sorted(s.events, key=lambda e: e.occurred_at)
    small, big = MemoryStore(), MemoryStore()
    log = CallLog(small, max_open_calls=3, keep_final_calls=1)
    feed(log, small, events, batch=7)
    feed(CallLog(big), big, events, batch=7)
    assert len(log.calls) <= 3
    strip = lambda rows: {k: {c: r[c] for c in CALL_ROW_COLUMNS if c not in ("version",)}  # noqa
                          for k, (_, (r, *_)) in live_rows(rows).items()}
    assert strip(small.tables["calls"]) == strip(big.tables["calls"])


def test_agent_intervals_and_wrap_up_across_batches():
    s = Scenario("beta")
    s.agent(T0 - 60 * S, "agent-1", "available", "logged_out")
    s.queue_call("b1", T0, "support", "+84922", wait_s=10, agent_id="agent-1", ring_s=5,
                 talk_s=300, wrap_s=30)
    events = sorted(s.events, key=lambda e: e.occurred_at)
    store = MemoryStore()
    feed(CallLog(store), store, events, batch=4)
    states = [(r["state"], (r["end_us"] - r["start_us"]) // S)
              for r in store.tables["agent_state_intervals"]]
    assert states == [("available", 67), ("offered", 5), ("on_call", 300), ("wrap_up", 30)]
    (_, (row,)) = live_rows(store.tables["calls"])[("beta", "b1")]
    assert row["wrap_ms"] == 30000 and row["final"] == 1
    assert VISIT_ROW_COLUMNS[-2:] == ("version", "sign")


def _interleaved(events, rnd):
    fs = [e for e in events if e.source != "router"]
    cc = [e for e in events if e.source == "router"]
    out = []
    while fs or cc:
        src = fs if (fs and (not cc or rnd.random() < 0.5)) else cc
        take = rnd.randint(1, 30)
        out.extend(src[:take])
        del src[:take]
    return out


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from analytics.cdr import CDR_COLUMNS, fold_call  # noqa: E402

_S = Scenario()
random_calls(_S, 25, T0, random.Random(12), agents=200)
_EVENTS = sorted(_S.events, key=lambda e: e.occurred_at)
_EXPECTED = {}
for _cid in {e.call_id for e in _EVENTS if e.call_id}:
    _own = [e for e in _EVENTS if e.call_id == _cid]
    _agent = fold_call(_own).cdr["agent_id"]
    _EXPECTED[_cid] = fold_call(_own + [e for e in _EVENTS if e.type == "agent_state_changed"
                                        and e.payload["agent_id"] == _agent]).cdr


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 60), st.floats(0, 1),
       st.integers(0, 80))
def test_any_interleaving_restart_and_redelivery_ends_with_the_fold(rnd, batch, cut, redo):
    """FS and router facts interleaved at random, batches of any size, a restart at any point
    with the last records delivered again: every call ends as the fold of all its events."""
    events = _interleaved(_EVENTS, rnd)
    store = MemoryStore()
    split = int(len(events) * cut)
    feed(CallLog(store), store, events[:split], batch=batch)
    feed(CallLog(store), store, events[max(0, split - redo):], batch=batch)
    live = {k[1]: r for k, (_, (r, *_)) in live_rows(store.tables["calls"]).items()}
    assert set(live) == set(_EXPECTED)
    for cid, expected in _EXPECTED.items():
        got = {c: live[cid][c] for c in CDR_COLUMNS}
        assert got == expected, cid
    assert set(store.net().values()) == {1}


def test_router_facts_are_checked_and_a_broken_call_does_not_stop_the_batch():
    from analytics.sink import check_payload
    from routing.contract import Envelope

    bad = Envelope("e1", "call_answered", 1, T0, "acme", "router", None, "c",
                   {"queue": "support", "agent_id": "a"})
    with pytest.raises(ValueError, match="wait_ms"):
        check_payload(bad)
    s = Scenario()
    s.queue_call("ok", T0, "support", "+84911")
    store = MemoryStore()
    log = CallLog(store)
    feed(log, store, sorted(s.events, key=lambda e: e.occurred_at) + [bad], batch=100)
    assert log.fold_errors == 1 and store.net() == {"ok": 1}
