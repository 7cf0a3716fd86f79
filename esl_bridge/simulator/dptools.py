"""What FreeSWITCH does with an IVR menu entry (mod_ivr's switch_ivr_menu.c and the
mod_dptools applications it runs), so the simulator does not accept what the switch would
not do.

- `menu-exec-app PARAM`: the application's name is PARAM up to the first space, the rest its
  argument; the application runs and the menu goes on (greeting again, waiting for keys):
  only an application that moves the channel (`transfer`; `hangup`) leaves it, because the
  menu loop stops when the channel is no longer "ready" (switch_channel_test_ready: a
  pending transfer or a hangup). An unknown application does nothing.
- `set NAME=VALUE` (base_set in mod_dptools.c): the name ends at the first `=` (else `,`);
  the value is the rest, colons and spaces included.
- `multiset A=1 B=2` (multiset_function): the argument is split on spaces (or on the
  delimiter given as a `^^<d>` prefix), then each part is a `set`.
- `menu-sub NAME`, `menu-exit`, `menu-top`, `menu-back`, `menu-play-sound`: as named.

Example of a dead end, as a real switch runs it:
`multiset set tongdai_ivr_choice=1:set tongdai_queue=sales:park` sets `set` (no value),
`tongdai_ivr_choice=1:set` and `tongdai_queue=sales:park`, and the caller stays in the menu.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: menu-exec-app applications that end the menu (they make the channel not "ready")
LEAVING = frozenset({"transfer", "hangup"})


@dataclass(frozen=True)
class EntryOutcome:
    """The effect of one menu entry on the channel."""

    variables: list[tuple[str, str | None]] = field(default_factory=list)  # in order
    leaves_menu: bool = False
    transfer: tuple[str, str, str] | None = None  # (destination, dialplan, context)
    hangup: str | None = None  # the cause, when the entry hangs up
    submenu: str | None = None
    ran: str = ""  # the application run (menu-exec-app), for logs


def set_args(data: str) -> tuple[str, str | None]:
    """`set`'s argument -> (name, value); an empty value unsets (None)."""
    name, sep, value = data.partition("=")
    if not sep:
        name, sep, value = data.partition(",")
    return name, (value if sep and value else None)


def multiset_args(data: str) -> list[tuple[str, str | None]]:
    """`multiset`'s argument -> the `set`s it does, in order."""
    delim = " "
    if data.startswith("^^") and len(data) > 2:
        delim, data = data[2], data[3:]
    return [set_args(part) for part in data.split(delim) if part]


def split_app(param: str) -> tuple[str, str]:
    """menu-exec-app's PARAM -> (application, argument), split at the first space."""
    app, _, arg = param.partition(" ")
    return app, arg


def menu_entry(action: str, param: str = "") -> EntryOutcome:
    """What the channel gets from an ivr.conf `<entry action=... param=...>` once its keys
    are pressed."""
    if action == "menu-exec-app":
        app, arg = split_app(param)
        if app == "set":
            return EntryOutcome([set_args(arg)], ran=app)
        if app == "multiset":
            return EntryOutcome(multiset_args(arg), ran=app)
        if app == "transfer":
            parts = arg.split()
            if not parts:
                return EntryOutcome(ran=app)  # transfer without a destination: an error
            dest = parts[0]
            dialplan = parts[1] if len(parts) > 1 else "XML"
            context = parts[2] if len(parts) > 2 else "default"
            return EntryOutcome(leaves_menu=True, transfer=(dest, dialplan, context), ran=app)
        if app == "hangup":
            return EntryOutcome(leaves_menu=True, hangup=arg or "NORMAL_CLEARING", ran=app)
        return EntryOutcome(ran=app)  # runs (park, playback, ...) and returns to the menu
    if action == "menu-sub":
        return EntryOutcome(submenu=param)
    if action == "menu-exit":
        return EntryOutcome(leaves_menu=True)
    return EntryOutcome()  # menu-play-sound, menu-top, menu-back, unknown: stays
