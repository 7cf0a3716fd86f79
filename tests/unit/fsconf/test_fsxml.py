"""The dialplan evaluator itself: each FreeSWITCH rule it models, on tiny dialplans."""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from tests.unit.fsconf import fsxml

pytestmark = pytest.mark.fsconf

TUE_10 = dt.datetime(2026, 11, 24, 10, 0)  # a Tuesday, Asia/Ho_Chi_Minh


def doc(contexts: str) -> ET.Element:
    return fsxml.parse_document(
        f'<document type="freeswitch/xml"><section name="dialplan">{contexts}</section></document>')


def call(dest: str, caller: str = "1000", context: str = "c", **kw) -> fsxml.Call:
    return fsxml.Call(destination=dest, caller=caller, context=context, at=kw.pop("at", TUE_10), **kw)


def test_first_matching_extension_wins_and_captures_substitute():
    root = doc("""<context name="c">
      <extension name="a"><condition field="destination_number" expression="^9(\\d+)$">
        <action application="bridge" data="user/$1@d"/></condition></extension>
      <extension name="b"><condition field="destination_number" expression="^9">
        <action application="hangup"/></condition></extension></context>""")
    out = fsxml.run(root, call("91001"))
    assert out.extensions == ["a"] and out.end == "bridge user/1001@d"


def test_continue_true_accumulates_and_failing_extension_is_skipped():
    root = doc("""<context name="c">
      <extension name="setup" continue="true"><condition>
        <action application="set" data="x=1"/></condition></extension>
      <extension name="no"><condition field="destination_number" expression="^5$">
        <action application="hangup"/></condition></extension>
      <extension name="yes"><condition field="${x}" expression="^$">
        <action application="park"/></condition></extension></context>""")
    # x is set at execution, not while hunting: "yes" sees an empty x.
    out = fsxml.run(root, call("7"))
    assert out.extensions == ["setup", "yes"] and out.end == "park"
    assert out.variables["x"] == "1"


def test_inline_set_is_seen_by_later_conditions():
    root = doc("""<context name="c">
      <extension name="setup" continue="true"><condition>
        <action application="set" data="x=1" inline="true"/></condition></extension>
      <extension name="one"><condition field="${x}" expression="^1$">
        <action application="park"/></condition></extension></context>""")
    assert fsxml.run(root, call("7")).extensions == ["setup", "one"]


def test_anti_action_counts_as_a_match_and_break_on_false_stops():
    root = doc("""<context name="c">
      <extension name="e">
        <condition field="caller_id_number" expression="^1$">
          <anti-action application="respond" data="403 Forbidden"/></condition>
        <condition field="destination_number" expression=".*">
          <action application="park"/></condition></extension>
      <extension name="never"><condition><action application="hangup"/></condition></extension>
      </context>""")
    out = fsxml.run(root, call("7", caller="2"))
    assert out.end == "respond 403 Forbidden" and out.extensions == ["e"]


def test_break_never_goes_on_after_a_failed_condition():
    root = doc("""<context name="c"><extension name="e">
        <condition field="caller_id_number" expression="^1$" break="never">
          <action application="set" data="vip=true"/></condition>
        <condition field="destination_number" expression=".*">
          <action application="park"/></condition></extension></context>""")
    assert fsxml.run(root, call("7", caller="2")).end == "park"
    assert fsxml.run(root, call("7", caller="1")).variables["vip"] == "true"


def test_actions_of_an_unmatched_extension_stay_queued():
    root = doc("""<context name="c">
      <extension name="half">
        <condition><action application="set" data="leak=1"/></condition>
        <condition field="destination_number" expression="^nope$">
          <action application="hangup"/></condition></extension>
      <extension name="park"><condition><action application="park"/></condition></extension>
      </context>""")
    out = fsxml.run(root, call("7"))
    assert out.variables["leak"] == "1" and out.end == "park"


@pytest.mark.parametrize("at, expected", [
    (dt.datetime(2026, 11, 24, 10, 0), "open"),   # Tuesday
    (dt.datetime(2026, 11, 24, 17, 30), "open"),  # the end minute is inclusive
    (dt.datetime(2026, 11, 24, 17, 31), "closed"),
    (dt.datetime(2026, 11, 24, 7, 59), "closed"),
    (dt.datetime(2026, 11, 22, 10, 0), "closed"),  # Sunday
    (dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.timezone.utc), "open"),  # 10:00 in Hanoi
])
def test_time_of_day_and_weekday(at, expected):
    root = doc("""<context name="c"><extension name="hours">
        <condition wday="mon-fri" time-of-day="08:00-17:30">
          <action application="set" data="state=open"/>
          <anti-action application="set" data="state=closed"/></condition></extension></context>""")
    assert fsxml.run(root, call("7", at=at)).variables["state"] == expected


def test_date_conditions():
    root = doc("""<context name="c"><extension name="holiday">
        <condition year="2027" mon="2" mday="5-9"><action application="hangup"/>
        <anti-action application="park"/></condition></extension></context>""")
    assert fsxml.run(root, call("7", at=dt.datetime(2027, 2, 6, 9))).end.startswith("hangup")
    assert fsxml.run(root, call("7", at=dt.datetime(2027, 2, 10, 9))).end == "park"


def test_transfer_hunts_the_target_context():
    root = doc("""<context name="c"><extension name="go"><condition>
        <action application="transfer" data="x XML d"/></condition></extension></context>
      <context name="d"><extension name="x"><condition field="destination_number" expression="^x$">
        <action application="park"/></condition></extension></context>""")
    out = fsxml.run(root, call("7"))
    assert out.visited == [("c", "go"), ("d", "x")] and out.end == "park"


def test_limit_transfers_when_over():
    root = doc("""<context name="c"><extension name="in"><condition field="destination_number" expression="^7$">
        <action application="limit" data="hash t inbound 2 busy XML c"/>
        <action application="park"/></condition></extension>
      <extension name="busy"><condition field="destination_number" expression="^busy$">
        <action application="hangup" data="USER_BUSY"/></condition></extension></context>""")
    assert fsxml.run(root, call("7", limits={"t/inbound": 1})).end == "park"
    assert fsxml.run(root, call("7", limits={"t/inbound": 2})).end == "hangup USER_BUSY"


def test_play_and_get_digits_retries_then_fails_over():
    root = doc("""<context name="c"><extension name="menu"><condition field="destination_number" expression="^m$">
        <action application="play_and_get_digits" data="1 1 3 5000 # p.wav bad.wav d [12] 3000 fail XML c"/>
        <action application="transfer" data="m_${d}"/></condition></extension>
      <extension name="pick"><condition field="destination_number" expression="^m_(\\d)$">
        <action application="set" data="chosen=$1"/><action application="park"/></condition></extension>
      <extension name="fail"><condition field="destination_number" expression="^fail$">
        <action application="hangup"/></condition></extension></context>""")
    out = fsxml.run(root, call("m", digits=["9", None, "2"]))
    assert out.variables["chosen"] == "2" and out.prompts == 3
    assert fsxml.run(root, call("m", digits=["9", "9", "9"])).end == "hangup NORMAL_CLEARING"


def test_unmodelled_things_are_refused():
    root = doc("""<context name="c"><extension name="x">
        <condition field="destination_number" expression="^7$" wday="1"><action application="park"/>
        </condition></extension></context>""")
    with pytest.raises(fsxml.Unsupported):
        fsxml.run(root, call("7"))
    root = doc("""<context name="c"><extension name="x"><condition field="tongdai_tenant" expression="a">
        <action application="park"/></condition></extension></context>""")
    with pytest.raises(fsxml.ConfigError, match="no caller-profile field"):
        fsxml.run(root, call("7"))


def test_preprocessor_include_and_set(tmp_path):
    (tmp_path / "vars.xml").write_text(
        '<include>\n<X-PRE-PROCESS cmd="set" data="domain=example.org"/>\n'
        '<X-PRE-PROCESS cmd="env-set" data="pw=TONGDAI_ESL_PASSWORD"/>\n</include>\n')
    (tmp_path / "dp").mkdir()
    (tmp_path / "dp" / "a.xml").write_text(
        '<include>\n<context name="c"><extension name="e"><condition>'
        '<action application="bridge" data="user/1@$${domain}"/></condition></extension></context>\n'
        '</include>\n')
    (tmp_path / "freeswitch.xml").write_text(
        '<document type="freeswitch/xml">\n<X-PRE-PROCESS cmd="include" data="vars.xml"/>\n'
        '<section name="dialplan">\n<X-PRE-PROCESS cmd="include" data="dp/*.xml"/>\n'
        '</section></document>\n')
    root = fsxml.load(tmp_path / "freeswitch.xml", {"TONGDAI_ESL_PASSWORD": "s3cret"})
    assert fsxml.globals_of(root)["pw"] == "s3cret"
    assert fsxml.run(root, call("1")).end == "bridge user/1@example.org"
    (tmp_path / "dp" / "b.xml").write_text('<include>\n<x a="$${undefined}"/>\n</include>\n')
    with pytest.raises(fsxml.ConfigError, match="undefined"):
        fsxml.load(tmp_path / "freeswitch.xml")


@pytest.mark.parametrize("text, rule", [
    ('<include><x/>\n</include>\n', "alone on its line"),
    ('<include>\n<X-PRE-PROCESS cmd="set" data="a=b"/><x/>\n</include>\n', "alone on its line"),
    ('<include>\n<!-- old:\n<X-PRE-PROCESS cmd="set" data="a=b"/>\n-->\n</include>\n', "comment"),
    ('<include>\n<x>\n</include>\n', "well-formed"),
])
def test_line_rules_of_the_preprocessor(tmp_path, text, rule):
    (tmp_path / "f.xml").write_text(text)
    with pytest.raises(fsxml.ConfigError, match=rule):
        fsxml.load(tmp_path / "f.xml")


def test_limit_can_hang_up_with_a_cause_and_events_carry_channel_variables():
    root = doc("""<context name="c"><extension name="in"><condition>
        <action application="set" data="tongdai_queue=q"/>
        <action application="event" data="Event-Subclass=x::y,Event-Name=CUSTOM,K=v"/>
        <action application="limit" data="hash t r 1 !USER_BUSY"/>
        <action application="park"/></condition></extension></context>""")
    out = fsxml.run(root, call("7"))
    assert out.events[0]["variable_tongdai_queue"] == "q" and out.events[0]["K"] == "v"
    assert out.parked["Event-Name"] == "CHANNEL_PARK"
    assert fsxml.run(root, call("7", limits={"t/r": 1})).end == "hangup USER_BUSY"
