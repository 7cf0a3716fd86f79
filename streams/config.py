"""Configuration records (plain dicts, as on `tongdai.config.v1`) -> routing model values.

Pure. The API validates configuration with its schemas before it writes a record; this
module still refuses malformed data with a ConfigError naming the field, because records
can also come from `tongdai config apply` files or older versions of the API.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing import model as m
from routing.numbers import Region


class ConfigError(ValueError):
    """A configuration record is malformed; the message names the entity and the field."""


KINDS = ("tenant", "queue", "agent", "did")

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def _minutes(text: str, where: str) -> int:
    try:
        h, mm = text.split(":")
        value = int(h) * 60 + int(mm)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not HH:MM") from None
    if not 0 <= value <= 24 * 60:
        raise ConfigError(f"{where}: {text!r} is outside 00:00-24:00")
    return value


def schedule(data: Mapping[str, Any] | None, where: str) -> m.Schedule | None:
    """`{"hours": {"mon": ["08:00-12:00", "13:30-17:30"], ...}, "holidays": ["2027-02-06"]}`."""
    if not data:
        return None
    hours: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, spans in (data.get("hours") or {}).items():
        key = _DAYS.get(str(day).lower()[:3])
        if key is None:
            raise ConfigError(f"{where}.hours: {day!r} is not a weekday (mon..sun)")
        parsed = []
        for span in spans:
            start, _, end = str(span).partition("-")
            a, b = _minutes(start, f"{where}.hours.{day}"), _minutes(end, f"{where}.hours.{day}")
            if b <= a:
                raise ConfigError(f"{where}.hours.{day}: {span!r} ends before it starts")
            parsed.append((a, b))
        hours[key] = tuple(sorted(parsed))
    holidays = frozenset(str(d) for d in data.get("holidays") or ())
    if data.get("tet_years"):
        for year in data["tet_years"]:
            holidays |= m.tet_holidays(int(year))
    return m.Schedule(id=str(data.get("id", "")), hours=hours, holidays=holidays)


def action(data: Any, where: str) -> m.Action:
    """`"voicemail"`, `{"kind": "queue", "target": "sales"}`, `{"kind": "forward", ...}`."""
    if isinstance(data, str):
        data = {"kind": data}
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ConfigError(f"{where}: must be an action name or {{kind, target}}")
    kinds = {v for k, v in vars(m.ActionKind).items() if k.isupper()}
    if data["kind"] not in kinds:
        raise ConfigError(f"{where}.kind: {data['kind']!r} is not one of {sorted(kinds)}")
    return m.Action(str(data["kind"]), str(data.get("target", "")))


def _skills(data: Any, where: str) -> tuple[m.SkillReq, ...]:
    if isinstance(data, Mapping):
        return tuple(m.SkillReq(str(k), int(v)) for k, v in sorted(data.items()))
    out = []
    for item in data or ():
        name, _, level = str(item).partition(":")
        out.append(m.SkillReq(name, int(level or 1)))
    return tuple(out)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def entity(kind: str, tenant: str, entity_id: str, data: Mapping[str, Any]):
    """The model value of one configuration record."""
    where = f"{kind} {entity_id!r}"
    try:
        if kind == "tenant":
            prefixes = {str(p): Region(str(p), str(r["province"]), str(r["region"]))
                        for p, r in (data.get("region_prefixes") or {}).items()}
            return m.Tenant(id=entity_id, max_concurrent_calls=int(data.get("max_concurrent_calls", 0)),
                            region_prefixes=prefixes)
        if kind == "did":
            return m.Did(number=entity_id, tenant=tenant, kind=str(data.get("kind", m.DidKind.GEOGRAPHIC)),
                         queue=str(data.get("queue", "")), region=data.get("region"))
        if kind == "queue":
            strategy = str(data.get("strategy", m.Strategy.LONGEST_IDLE))
            if strategy not in m.STRATEGIES:
                raise ConfigError(f"{where}.strategy: {strategy!r} is not one of "
                                  f"{sorted(m.STRATEGIES)}")
            fields: dict[str, Any] = {
                "id": entity_id, "tenant": tenant, "strategy": strategy,
                "seed": int(data.get("seed", 0)),
                "schedule": schedule(data.get("schedule"), f"{where}.schedule"),
                "skills": _skills(data.get("skills"), f"{where}.skills"),
                "relax": tuple(m.RelaxStep(int(r["after_s"]), int(r["min_level"]))
                               for r in data.get("relax") or ()),
            }
            if "connect" in data:
                fields["connect"] = str(data["connect"])
            if data.get("callback_key") is not None:
                fields["callback_key"] = str(data["callback_key"])
            if "callback_attempts" in data:
                fields["callback_attempts"] = int(data["callback_attempts"])
            for name in ("after_hours", "max_wait_action", "max_len_action", "no_agent_action"):
                if data.get(name) is not None:
                    fields[name] = action(data[name], f"{where}.{name}")
            for name in ("offer_timeout_s", "wrapup_s", "ring_progressive_step_s", "vip_boost",
                         "sticky_wait_s"):
                if name in data:
                    fields[name] = int(data[name])
            for name in ("any_agent_after_s", "tier_wait_s", "geo_widen_after_s", "aging_s",
                         "load_window_s", "max_wait_s", "max_queue_len", "announce_every_s"):
                if name in data:
                    fields[name] = _optional_int(data[name])
            for name in ("prefer_best_skill", "tier_no_agent_no_wait", "forward_to_mobile"):
                if name in data:
                    fields[name] = bool(data[name])
            return m.Queue(**fields)
        if kind == "agent":
            queues = {}
            for qid, mem in (data.get("queues") or {}).items():
                mem = mem or {}
                queues[str(qid)] = m.Membership(level=int(mem.get("level", 1)),
                                                position=int(mem.get("position", 1)))
            fields = {
                "id": entity_id, "tenant": tenant,
                "extension": str(data.get("extension", "")),
                "skills": {str(k): int(v) for k, v in (data.get("skills") or {}).items()},
                "languages": frozenset(data.get("languages") or ("vi",)),
                "region": data.get("region"), "site": str(data.get("site", "")),
                "mobile": str(data.get("mobile", "")),
                "shift": schedule(data.get("shift"), f"{where}.shift"),
                "max_concurrent": int(data.get("max_concurrent", 1)), "queues": queues,
                "wrapup_s": _optional_int(data.get("wrapup_s")),
                "offer_timeout_s": _optional_int(data.get("offer_timeout_s")),
            }
            if data.get("penalties"):
                fields["penalties"] = {
                    str(cause): m.Penalty(int(p["delay_s"]), int(p["max_count"]))
                    for cause, p in data["penalties"].items()}
            agent = m.Agent(**fields)
            if not agent.extension:
                raise ConfigError(f"{where}.extension: required")
            return agent
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {type(exc).__name__}: {exc}") from None
    raise ConfigError(f"unknown configuration kind {kind!r} (one of {', '.join(KINDS)})")
