"""Who may be called out: the one rule for click-to-call and every outbound path.

The tenants' outbound dialplans (fs-conf/dialplan/tenants/*.xml, context
`tongdai_<tenant>_outbound`) sort a destination into a class and bridge it only if the
class is in the caller's `tongdai_outbound` list; `classify` is the same sorting (a test
checks it against those dialplans' expressions), and `check_outbound` adds what a
contact center never dials from a click: emergency numbers and premium-rate numbers
abroad. The API refuses with the reason before writing a command; the router checks again
before it originates. Pure: no I/O.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from . import numbers

MOBILE, NATIONAL, SERVICE, INTERNATIONAL = "mobile", "national", "service", "international"
EMERGENCY, INVALID = "emergency", "invalid"
#: the classes a tenant may allow (the dialplan's `tongdai_outbound` values)
CLASSES = (NATIONAL, MOBILE, SERVICE, INTERNATIONAL)
DEFAULT_CLASSES = (NATIONAL, MOBILE)
#: Vietnam's emergency numbers (112 rescue, 113 police, 114 fire, 115 ambulance)
EMERGENCY_NUMBERS = frozenset({"112", "113", "114", "115"})
#: Premium-rate ranges abroad: never dialled from a click, whatever the tenant allows
#: (+1 900 / +1 976 North America; +44 9 UK; +33 89 France; +49 900 Germany; +61 19 Australia)
PREMIUM_ABROAD = ("+1900", "+1976", "+449", "+3389", "+49900", "+6119")

# The dialplan's expressions, on the destination after +84/84 forms became national (0...).
_MOBILE = re.compile(r"^0[35789][0-9]{8}$")
_NATIONAL = re.compile(r"^02[0-9]{9}$")
_SERVICE = re.compile(r"^1[89]00[0-9]{4,6}$")
_INTERNATIONAL = re.compile(r"^(?:00|\+)[1-9][0-9]{6,15}$")
_CLEAN = str.maketrans("", "", " .-()/\t")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a number may be called; `destination` is what the dialplan is given."""

    allowed: bool
    dest_class: str
    destination: str
    reason: str = ""


def dialled_form(number: str) -> str:
    """What the outbound dialplan sees: national `0…` for Vietnamese numbers (any +84 / 84 /
    0 form), E.164 `+…` for others, service numbers and short codes as digits."""
    text = str(number).strip().translate(_CLEAN)
    if text in EMERGENCY_NUMBERS or not text:
        return text
    try:
        e164 = numbers.to_e164(text)
    except ValueError:
        return text
    if e164.startswith("+84"):
        return "0" + e164[3:]
    return e164


def classify(number: str) -> str:
    """The dialplan's class of a destination: emergency, mobile, national, service,
    international, or invalid (the dialplan's `outbound_unknown`)."""
    dest = dialled_form(number)
    if dest in EMERGENCY_NUMBERS:
        return EMERGENCY
    for cls, pattern in ((MOBILE, _MOBILE), (NATIONAL, _NATIONAL), (SERVICE, _SERVICE),
                         (INTERNATIONAL, _INTERNATIONAL)):
        if pattern.match(dest):
            return cls
    return INVALID


def check_outbound(number: str, allowed: Iterable[str] = DEFAULT_CLASSES) -> Verdict:
    """May `number` be called out by someone allowed the classes `allowed`? The reason
    says why not, for the person who clicked."""
    dest = dialled_form(number)
    cls = classify(number)
    allowed = tuple(allowed)
    if cls == EMERGENCY:
        return Verdict(False, cls, dest, f"{dest} is an emergency number: dial it from a "
                                         "phone, never by click-to-call")
    if cls == INVALID:
        return Verdict(False, cls, dest, f"phone number {number!r} cannot be called out "
                                         "(only a Vietnamese mobile, landline, 1800/1900 "
                                         "number or an international number)")
    if cls == INTERNATIONAL and dest.startswith(PREMIUM_ABROAD):
        return Verdict(False, "premium_international", dest,
                       f"{dest} is a premium-rate number abroad: never called out")
    if cls not in allowed:
        return Verdict(False, cls, dest, f"{cls} numbers may not be called by this tenant "
                                         f"(allowed: {', '.join(allowed) or 'none'})")
    return Verdict(True, cls, dest)
