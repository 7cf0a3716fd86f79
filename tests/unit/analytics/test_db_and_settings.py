"""SQL rendering, migrations' portability, settings."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from analytics import migrations, reports
from analytics.db import bind, quote, render, split_statements
from analytics.settings import AnalyticsSettings, load
from routing.contract.environ import SettingsError

pytestmark = pytest.mark.analytics


@pytest.mark.parametrize("value, sql", [
    ("it's", r"'it\'s'"), ("a\\b", r"'a\\b'"), (3, "3"), (True, "1"), (None, "NULL"),
    (("a", "b"), "('a', 'b')"), ({"b", "a"}, "('a', 'b')"), (["x", 1], "['x', 1]"),
    ({("c", 1, -1)}, "(('c', 1, -1))"),
    (dt.datetime(2026, 11, 22, 7, tzinfo=dt.timezone(dt.timedelta(hours=7))), "1795305600"),
])
def test_quote(value, sql):
    assert quote(value) == sql


def test_render_rejects_missing_names_naive_times_and_empty_sets():
    assert render("SELECT %(a)s, '%%'", {"a": "x"}) == "SELECT 'x', '%%'"
    with pytest.raises(KeyError):
        render("SELECT %(b)s", {"a": 1})
    with pytest.raises(ValueError):
        quote(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        quote(())


def test_bind_gives_the_driver_values_of_quote_s_meaning():
    """A server binds through clickhouse-driver; these are the values it is handed (its
    escaping is checked against `render` on a server in test_query_params.py)."""
    aware = dt.datetime(2026, 11, 22, 7, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    sql, params = bind("SELECT %(a)s, '%%', n % 2, %(b)s, %(c)s, %(d)s FROM t WHERE x IN %(e)s",
                       {"a": {"b", "a"}, "b": True, "c": aware, "d": ["x", 1],
                        "e": {("c", 1, -1)}, "unused": object()})
    assert sql == "SELECT %(a)s, '%%%%', n %% 2, %(b)s, %(c)s, %(d)s FROM t WHERE x IN %(e)s"
    assert params == {"a": ("a", "b"), "b": 1, "c": 1795305600, "d": ["x", 1],
                      "e": (("c", 1, -1),)}
    assert bind("SELECT 5 % 2", None) == ("SELECT 5 % 2", None)
    with pytest.raises(KeyError, match="'b'"):
        bind("SELECT %(b)s", {"a": 1})
    with pytest.raises(ValueError, match="timezone-aware"):
        bind("SELECT %(t)s", {"t": dt.datetime(2026, 1, 1)})
    with pytest.raises(ValueError, match="empty set"):
        bind("SELECT %(s)s", {"s": frozenset()})
    with pytest.raises(TypeError, match="cannot bind dict"):
        bind("SELECT %(m)s", {"m": {"k": 1}})


def test_migrations_are_ordered_and_portable_to_18_16():
    versions = [m.version for m in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    forbidden = re.compile(r"DateTime64|\bTTL\b|JSONExtract|\bMap\(|toStartOfInterval|OVER\s*\(",
                           re.I)
    for m in migrations.MIGRATIONS:
        assert not forbidden.search(m.sql), m.name
        for statement in split_statements(m.sql.format(db="d", lc="String")):
            assert "VALUES" not in statement.upper()
    for name, fn in reports.REPORTS.items():
        assert fn.__doc__, name


def test_features_by_version():
    old, new = migrations.Features((18, 16, 1)), migrations.Features((26, 9, 2))
    assert (old.lc(), old.create_user) == ("String", False)
    assert (new.lc(), new.create_user) == ("LowCardinality(String)", True)


def test_settings_defaults_and_errors():
    s = load({})
    assert s.consumer_group == "tongdai-sink-local" and s.report_timezone == "Asia/Ho_Chi_Minh"
    s = load({"TONGDAI_DEPLOYMENT": "prod", "TONGDAI_SINK_TOPICS": "a, b",
              "TONGDAI_SINK_BATCH_ROWS": "500"})
    assert (s.consumer_group, s.sink_topics, s.sink_batch_rows) == ("tongdai-sink-prod",
                                                                    ("a", "b"), 500)
    for env, word in [({"TONGDAI_CLICKHOUSE_PORT": "0"}, "TONGDAI_CLICKHOUSE_PORT"),
                      ({"TONGDAI_CLICKHOUSE_DATABASE": "x; DROP"}, "TONGDAI_CLICKHOUSE_DATABASE"),
                      ({"TONGDAI_SINK_BATCH_S": "-1"}, "TONGDAI_SINK_BATCH_S"),
                      ({"TONGDAI_SINK_RETRY_MAX_S": "0.1"}, "TONGDAI_SINK_RETRY_MAX_S")]:
        with pytest.raises(SettingsError, match=word):
            load(env)
    assert "password" not in repr(AnalyticsSettings(clickhouse_password="secret"))
    assert "secret" not in repr(AnalyticsSettings(clickhouse_password="secret"))


def test_kpi_definitions_with_empty_denominators():
    zero = dict.fromkeys(("offered", "answered", "abandoned", "short_abandoned", "overflowed",
                          "answered_within_sl", "sl_threshold_s", "wait_answered_ms",
                          "talk_ms", "hold_ms", "wrap_ms", "max_wait_ms"), 0)
    k = reports._kpis(zero)
    assert k["service_level"] is None and k["asa_ms"] is None and k["answer_rate"] is None
    only_short = {**zero, "offered": 2, "abandoned": 2, "short_abandoned": 2}
    k = reports._kpis(only_short)
    assert k["abandonment_rate"] is None and k["service_level"] is None
    assert k["answer_rate"] == 0


def test_periods():
    day = reports.Period.day("2026-11-22")
    assert day.start.isoformat() == "2026-11-22T00:00:00+07:00"
    assert day.params()["start"] == 1795280400
    with pytest.raises(ValueError, match="timezone-aware"):
        reports.Period.of("2026-11-22T00:00:00", "2026-11-23T00:00:00")
    with pytest.raises(ValueError, match="after start"):
        reports.Period.of("2026-11-23T00:00:00+07:00", "2026-11-22T00:00:00+07:00")
