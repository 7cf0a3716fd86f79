"""Recording retention: each tenant's `recording.retention_days` (0: kept for ever).

Recordings are <recordings>/<tenant>/<YYYY-MM-DD>/<call id>.wav (the date in Vietnam, the
day the call was answered): a day's folder whose date is more than `retention_days` before
today goes, whole. Every deletion is audited (`recording.purge`, per tenant and day, with
the number of files), so a listen that finds no file any more can be explained.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.view import ConfigView

DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True)
class Purged:
    tenant: str
    day: str
    files: int


def retention_days(view: ConfigView, tenant: str) -> int:
    entry = view.get(tenant, "tenant", tenant)
    policy = (entry.data.get("recording") if entry else None) or {}
    return int(policy.get("retention_days") or 0)


def expired(view: ConfigView, recordings: Path, today: dt.date) -> list[Purged]:
    """The tenants' day folders past their retention (nothing of a tenant that keeps its
    recordings, nothing of a folder that is not a tenant's or a day's)."""
    out = []
    for tenant in view.tenants():
        days = retention_days(view, tenant)
        folder = recordings / tenant
        if not days or not folder.is_dir():
            continue
        oldest_kept = today - dt.timedelta(days=days)
        for day in sorted(folder.iterdir()):
            if not (day.is_dir() and DAY.match(day.name)):
                continue
            if dt.date.fromisoformat(day.name) < oldest_kept:
                out.append(Purged(tenant, day.name, sum(1 for f in day.iterdir() if f.is_file())))
    return out


def purge(view: ConfigView, recordings: Path, today: dt.date,
          audit: Callable[[Purged], None], dry_run: bool = False) -> list[Purged]:
    """Delete what `expired` finds; `audit` is called for each day folder before it goes."""
    found = expired(view, recordings, today)
    if not dry_run:
        for p in found:
            audit(p)
            shutil.rmtree(recordings / p.tenant / p.day)
    return found
