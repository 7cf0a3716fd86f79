"""A small evaluator of FreeSWITCH XML configuration and of the XML dialplan, for tests.

FreeSWITCH cannot run on the test machines, so the tests answer "which extension and
which applications does this call reach?" with this module. It implements the part of
FreeSWITCH's semantics that tongdai's configuration relies on, following the C sources
(`src/switch_xml.c` for the pre-processor, `mod_dialplan_xml.c` `parse_exten` and
`dialplan_hunt` for the hunt, `switch_xml_std_datetime_check` for time conditions) and
refuses (raises `Unsupported`) what it does not model, so a dialplan that uses something
new fails loudly instead of being evaluated wrongly.

Pre-processor (`load`):
- FreeSWITCH reads files line by line: a line with `<include>`/`</include>` is dropped
  whole and a line with X-PRE-PROCESS is replaced by its effect (even inside a comment),
  so each must be alone on its line; `parse_file` refuses files that break this;
- `<X-PRE-PROCESS cmd="include" data="glob"/>`: files matching the glob (relative to the
  including file's folder; sorted), an `<include>` root contributes its children;
- `cmd="set" data="name=value"`: a global variable; `$${name}` in later attributes and
  text is replaced by its value (as FreeSWITCH does while reading the files); the core's
  own globals (`recordings_dir`, `sounds_dir`, ...) are predefined; an undefined one is an
  error here (FreeSWITCH would silently put nothing);
- `cmd="env-set" data="name=ENV_NAME"`: like set, from the environment given to `load`;
  `cmd="exec-set"` is refused (it runs a program).

Hunt (`hunt`), as `dialplan_hunt` + `parse_exten`:
- the context is found by name (falling back to `global`); extensions are tried in order;
- a `<condition>` with `field` matches the field's value against `expression` (PCRE is
  approximated by Python's `re`); `field` is a caller-profile field (`destination_number`,
  `caller_id_number`, ...) or an expression with `${var}` expanded from channel variables;
- a condition with time attributes (`wday`, `time-of-day`, `mday`, `mon`, `year`, `hour`,
  `minute`, `minute-of-day`, `yday`) and no field matches on the call's time in the
  channel's `timezone` (default Asia/Ho_Chi_Minh); a condition with neither is absolute
  (it always matches); mixing `field` and time attributes in one condition is refused
  (FreeSWITCH's C code lets the regex override the time result: a trap);
- on a match the `<action>`s are added with `$1`..`$9` substituted from the regex
  captures (only when the expression has a group, as FreeSWITCH); otherwise the `<anti-action>`s are added, and an extension that added any
  anti-action counts as matched;
- `break`: `on-false` (default) stops the extension's conditions when one fails,
  `on-true` when one matches, `always`, `never`; nested conditions are evaluated when
  their parent matched;
- the extension "matched" if its last evaluated condition matched; hunting stops at a
  matched extension unless it has `continue="true"`; actions added by an extension that
  did not match stay in the list (as in FreeSWITCH);
- `inline="true"` actions run at once (only `set`, `export`, `unset`, `log` are allowed
  inline here), so later conditions of the same hunt see their variables.

Execution (`run`): the hunted applications are executed in order with `${var}` expanded
at that moment. Modelled: set, export, unset, transfer and execute_extension (a new hunt),
limit (with a per-test usage table; an over-limit destination or `!CAUSE` is required), the
`play_and_get_digits` and `read` prompts (digits come from the test's script; None is a
timeout), hangup, respond, park, bridge (success unless the test lists the target as
failing; then `continue_on_fail` decides), event (a CUSTOM event is recorded), voicemail,
intercept, pickup, att_xfer, hash (insert/delete on the test's hash table). Any other
application is recorded and execution goes on. An `event` and a `park` record the
channel's data as FreeSWITCH would send it (`variable_*` headers), so tests can feed them
to the bridge's normalizer. `${uuid}`, `${strftime(FORMAT)}`, `${strftime_tz(ZONE FORMAT)}`, `${hash(select/REALM/KEY)}`
and `${user_data(USER@DOMAIN var NAME)}` (from the directory) are the only API functions
expanded; `${sched_api(WHEN GROUP COMMAND)}` records the task in `Outcome.scheduled`.

`main` traces one call from the command line (see fs-conf/README.md).
"""
from __future__ import annotations

import copy
import datetime as dt
import glob
import os
import re
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
INLINE_APPS = ("set", "export", "unset", "log")
PROFILE_FIELDS = ("destination_number", "caller_id_number", "caller_id_name", "context",
                  "network_addr", "ani", "aniii", "rdnis", "source", "chan_name", "uuid",
                  "username", "dialplan")
TIME_ATTRS = ("year", "yday", "mon", "mday", "week", "mweek", "wday", "hour", "minute",
              "minute-of-day", "time-of-day", "date-time")
_WDAYS = {"sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7}


class Unsupported(Exception):
    """The configuration uses something this evaluator does not model."""


class ConfigError(Exception):
    """The configuration is wrong in a way FreeSWITCH would also refuse or misroute."""


# ----------------------------------------------------------------------------- loading
_GLOBAL = re.compile(r"\$\$\{([^}]+)\}")


def load(main: str | os.PathLike, environ: Mapping[str, str] | None = None) -> ET.Element:
    """Read `freeswitch.xml` and everything it includes into one element tree, the way
    FreeSWITCH's pre-processor does. Globals end up in the root's `globals` attribute map
    (see `globals_of`)."""
    main = Path(main)
    state = {"globals": dict(BUILTIN_GLOBALS), "environ": dict(environ or {})}
    root = parse_file(main)
    _preprocess(root, state, main)
    _GLOBALS[root] = state["globals"]
    return root


_GLOBALS: weakref.WeakKeyDictionary[ET.Element, dict[str, str]] = weakref.WeakKeyDictionary()


def globals_of(root: ET.Element) -> dict[str, str]:
    """The `X-PRE-PROCESS set` variables seen while loading `root`."""
    return _GLOBALS[root]


# Globals FreeSWITCH's core sets before it reads the configuration (values as in the
# Debian packages; only their presence matters to the tests).
BUILTIN_GLOBALS = {
    "base_dir": "/usr", "conf_dir": "/etc/freeswitch", "log_dir": "/var/log/freeswitch",
    "run_dir": "/run/freeswitch", "db_dir": "/var/lib/freeswitch/db",
    "mod_dir": "/usr/lib/freeswitch/mod", "storage_dir": "/var/lib/freeswitch/storage",
    "recordings_dir": "/var/lib/freeswitch/recordings",
    "sounds_dir": "/usr/share/freeswitch/sounds", "hostname": "fs-test",
    "local_ip_v4": "192.0.2.10", "local_mask_v4": "255.255.255.0",
}


def parse_file(path: Path) -> ET.Element:
    """Parse one file after checking the line rules of FreeSWITCH's pre-processor, which
    reads files line by line: a line holding `<include>` or `</include>` is dropped whole,
    and a line holding X-PRE-PROCESS is replaced by the command's effect (even inside a
    comment), so neither may share its line with anything else."""
    text = path.read_text(encoding="utf-8")
    in_comment = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        where = f"{path}:{number}"
        if ("<include>" in line or "</include>" in line) and stripped not in ("<include>", "</include>"):
            raise ConfigError(f"{where}: <include>/</include> must be alone on its line")
        if "X-PRE-PROCESS" in line.upper():
            if in_comment or "<!--" in line:
                raise ConfigError(f"{where}: X-PRE-PROCESS in a comment still runs")
            if not re.fullmatch(r"<X-PRE-PROCESS\s[^<>]*/>", stripped):
                raise ConfigError(f"{where}: X-PRE-PROCESS must be alone on its line")
        opened, closed = line.rfind("<!--"), line.rfind("-->")
        if opened > closed:
            in_comment = True
        elif closed > opened:
            in_comment = False
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: not well-formed XML: {exc}") from None


def _subst_globals(text: str, state: dict, where: Path) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in state["globals"]:
            raise ConfigError(f"{where}: $${{{name}}} used before it is set")
        return state["globals"][name]
    return _GLOBAL.sub(one, text)


def _preprocess(elem: ET.Element, state: dict, where: Path) -> None:
    index = 0
    while index < len(elem):
        child = elem[index]
        if child.tag == "X-PRE-PROCESS":
            cmd = child.get("cmd", "")
            data = _subst_globals(child.get("data", ""), state, where)
            elem.remove(child)
            if cmd == "set":
                name, sep, value = data.partition("=")
                if not sep:
                    raise ConfigError(f"{where}: X-PRE-PROCESS set {data!r} lacks '='")
                state["globals"][name.strip()] = value
            elif cmd == "env-set":
                name, sep, env = data.partition("=")
                state["globals"][name.strip()] = state["environ"].get(env.strip(), "")
            elif cmd == "include":
                # FreeSWITCH resolves a relative include against the including file's folder.
                pattern = data if os.path.isabs(data) else str(where.parent / data)
                files = sorted(glob.glob(pattern))
                if not files and not any(ch in data for ch in "*?["):
                    raise ConfigError(f"{where}: include {data!r} matches no file")
                inserted = []
                for name in files:
                    sub = parse_file(Path(name))
                    holder = ET.Element("__holder__")
                    if sub.tag == "include":
                        holder.extend(list(sub))
                    else:
                        holder.append(sub)
                    _preprocess(holder, state, Path(name))
                    inserted.extend(list(holder))
                for offset, node in enumerate(inserted):
                    elem.insert(index + offset, node)
                index += len(inserted)
            elif cmd == "comment":
                pass
            else:
                raise Unsupported(f"{where}: X-PRE-PROCESS cmd={cmd!r}")
            continue
        for key, value in list(child.attrib.items()):
            child.attrib[key] = _subst_globals(value, state, where)
        if child.text:
            child.text = _subst_globals(child.text, state, where)
        _preprocess(child, state, where)
        index += 1


def parse_document(text: str) -> ET.Element:
    """A mod_xml_curl answer (`<document type="freeswitch/xml">`) as served by the api."""
    root = ET.fromstring(text)
    if root.tag != "document" or root.get("type") != "freeswitch/xml":
        raise ConfigError("a mod_xml_curl answer must be <document type=\"freeswitch/xml\">")
    _GLOBALS[root] = {}
    return root


def section(root: ET.Element, name: str) -> ET.Element:
    for sec in root.iter("section"):
        if sec.get("name") == name:
            return sec
    raise ConfigError(f"no section {name!r}")


def configuration(root: ET.Element, name: str) -> ET.Element:
    """`<configuration name="NAME">` of the configuration section."""
    for conf in section(root, "configuration").iter("configuration"):
        if conf.get("name") == name:
            return conf
    raise ConfigError(f"no configuration {name!r}")


def params(elem: ET.Element, tag: str = "param") -> dict[str, str]:
    """name -> value of the `<param>` (or `<variable>`) children anywhere under elem."""
    return {p.get("name", ""): p.get("value", "") for p in elem.iter(tag)}


# ------------------------------------------------------------------------------ users
def directory_user(root: ET.Element, user: str, domain: str) -> dict[str, str]:
    """The channel variables a call from a registered `user@domain` carries (the domain's
    variables, then the user's, as FreeSWITCH applies them on authentication)."""
    for dom in section(root, "directory").iter("domain"):
        if dom.get("name") != domain:
            continue
        variables = {}
        for v in dom.findall("./variables/variable"):
            variables[v.get("name", "")] = v.get("value", "")
        for u in dom.iter("user"):
            if u.get("id") == user:
                for v in u.findall("./variables/variable"):
                    variables[v.get("name", "")] = v.get("value", "")
                variables.setdefault("domain_name", domain)
                variables.setdefault("user_name", user)
                return variables
        raise ConfigError(f"no user {user!r} in domain {domain!r}")
    raise ConfigError(f"no domain {domain!r} in the directory")


# ------------------------------------------------------------------------------- calls
@dataclass
class Step:
    context: str
    extension: str
    application: str
    data: str


@dataclass
class Call:
    """One call to evaluate: what FreeSWITCH knows when the dialplan is hunted."""

    destination: str
    caller: str
    context: str
    at: dt.datetime
    variables: dict[str, str] = field(default_factory=dict)
    digits: list[str | None] = field(default_factory=list)  # one entry per prompt try
    limits: dict[str, int] = field(default_factory=dict)  # "realm/resource" -> calls in use
    hash: dict[str, str] = field(default_factory=dict)  # "realm/key" -> value
    failing: tuple[str, ...] = ()  # bridge targets that fail (NO_ANSWER)
    uuid: str = "call-uuid-1"


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    visited: list[tuple[str, str]] = field(default_factory=list)  # (context, extension) hunted
    end: str = ""  # park | hangup CAUSE | respond CODE | bridge TARGET | voicemail ARGS | ...
    parked: dict[str, str] | None = None  # the CHANNEL_PARK event's headers, if parked
    hash: dict[str, str] = field(default_factory=dict)  # mod_hash after the call
    prompts: int = 0
    scheduled: list[tuple[str, str, str]] = field(default_factory=list)  # sched_api tasks

    def apps(self, name: str) -> list[str]:
        """The data of every executed application called `name`."""
        return [s.data for s in self.steps if s.application == name]

    @property
    def extensions(self) -> list[str]:
        return [e for _, e in self.visited]


class _Session:
    def __init__(self, root: ET.Element, call: Call) -> None:
        self.root = root
        self.call = call
        self.globals = _GLOBALS.get(root, {})
        self.vars: dict[str, str] = {"uuid": call.uuid, **call.variables}
        self.profile = {"destination_number": call.destination,
                        "caller_id_number": call.caller, "context": call.context,
                        "caller_id_name": call.variables.get("caller_id_name", call.caller),
                        "ani": call.caller, "uuid": call.uuid, "dialplan": "XML",
                        "network_addr": call.variables.get("network_addr", ""),
                        "username": call.variables.get("user_name", ""), "rdnis": "",
                        "source": "mod_sofia", "chan_name": "sofia/test", "aniii": ""}
        self.out = Outcome()
        self.digits = list(call.digits)
        self.hops = 0

    # ---- variables
    def get(self, name: str) -> str:
        if name in self.vars:
            return self.vars[name]
        if name in self.profile:
            return self.profile[name]
        if name in self.globals:  # FreeSWITCH falls back to global variables
            return self.globals[name]
        return ""

    def expand(self, text: str) -> str:
        """`${var}` and the few `${api(args)}` functions, as switch_channel_expand_variables
        scans: a `${` block ends at its matching `}` (braces inside count, so a JSON
        argument stays whole), a function's argument is expanded before it is called, and
        `\\$` is a `$` left for later (e.g. a scheduled task's path, expanded when it
        plays); inside a function's argument that escape is taken at the argument's own
        expansion, as FreeSWITCH does."""
        out: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("\\$", i):
                out.append("$")
                i += 2
            elif text.startswith("${", i):
                j, depth = i + 2, 1
                while j < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                if depth:
                    raise ConfigError(f"unterminated ${{ in {text!r}")
                out.append(self._value(text[i + 2:j - 1]))
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _value(self, inner: str) -> str:
        fm = re.fullmatch(r"([a-z_]+)\((.*)\)", inner, re.S)
        if not fm:
            return self.get(self.expand(inner))
        func, arg = fm.groups()
        arg = self.expand(arg)
        if func == "sched_api":  # WHEN GROUP COMMAND: run later by the switch's scheduler
            when, group, command = arg.split(" ", 2)
            self.out.scheduled.append((when, group, command))
            return f"+OK Added: {len(self.out.scheduled)}\n"
        if func == "strftime":
            return self.local_time().strftime(arg or "%Y-%m-%d %H:%M:%S")
        if func == "strftime_tz":  # ZONE [FORMAT]
            zone, _, fmt = arg.partition(" ")
            return self.local_time().astimezone(ZoneInfo(zone)).strftime(
                fmt or "%Y-%m-%d %H:%M:%S")
        if func == "hash":
            op, _, rest = arg.partition("/")
            if op != "select":
                raise Unsupported(f"${{hash({arg})}}")
            return self.call.hash.get(rest, "")
        if func == "user_data":  # user@domain [var|param|attr] name
            who, kind, name = arg.split()
            user, _, domain = who.partition("@")
            if kind != "var":
                raise Unsupported(f"${{user_data(... {kind} ...)}}")
            try:
                return directory_user(self.root, user, domain).get(name, "")
            except ConfigError:
                return ""  # FreeSWITCH expands an unknown user's data to nothing
        raise Unsupported(f"API function ${{{func}(...)}}")

    def local_time(self) -> dt.datetime:
        tz = ZoneInfo(self.get("timezone") or DEFAULT_TZ)
        at = self.call.at
        return at.astimezone(tz) if at.tzinfo else at.replace(tzinfo=ZoneInfo(DEFAULT_TZ)).astimezone(tz)

    def channel_data(self) -> dict[str, str]:
        """The headers FreeSWITCH puts in a channel event now (the ones tests look at)."""
        data = {"Unique-ID": self.call.uuid, "Channel-Call-UUID": self.call.uuid,
                "Caller-Caller-ID-Number": self.call.caller,
                "Caller-Destination-Number": self.profile["destination_number"],
                "Caller-Context": self.profile["context"],
                "Core-UUID": "fsxml-core", "Event-Sequence": str(len(self.out.steps)),
                "Event-Date-Timestamp": str(int(self.local_time().timestamp() * 1_000_000))}
        data.update((f"variable_{k}", v) for k, v in self.vars.items())
        return data

    # ---- hunting
    def find_context(self, name: str) -> ET.Element:
        dialplan = section(self.root, "dialplan")
        contexts = {c.get("name"): c for c in dialplan.iter("context")}
        if name in contexts:
            return contexts[name]
        if "global" in contexts:
            return contexts["global"]
        raise ConfigError(f"context {name!r} not found")

    def hunt(self, context: str, destination: str) -> list[tuple[str, str, str, str]]:
        self.profile["context"] = context
        self.profile["destination_number"] = destination
        apps: list[tuple[str, str, str, str]] = []
        for exten in self.find_context(context).findall("extension"):
            name = exten.get("name", "UNKNOWN")
            before = len(apps)
            proceed = self.parse_exten(exten, name, context, apps)
            if proceed or len(apps) > before:
                self.out.visited.append((context, name))
            if proceed and exten.get("continue", "false").lower() not in ("true", "yes", "1", "on"):
                break
        return apps

    def parse_exten(self, xexten: ET.Element, name: str, context: str, apps: list) -> bool:
        proceed = False
        for xcond in xexten.findall("condition"):
            fld = xcond.get("field")
            brk = xcond.get("break", "on-false")
            if brk not in ("on-false", "on-true", "always", "never"):
                brk = "on-false"
            if xcond.get("regex") is not None:
                raise Unsupported(f"{name}: <condition regex=...>")
            has_time = any(a in xcond.attrib for a in TIME_ATTRS)
            if fld is not None and has_time:
                raise Unsupported(f"{name}: field and time attributes in one condition")
            captures: tuple[str, ...] = ()
            if fld is not None:
                expression = self.expand(xcond.get("expression", ""))
                value = self.field_value(fld, name)
                try:
                    m = re.search(expression, value)
                except re.error as exc:
                    raise ConfigError(f"{name}: bad expression {expression!r}: {exc}") from None
                matched = m is not None
                if m and "(" in expression:  # FreeSWITCH substitutes only then
                    captures = (m.group(0),) + tuple(g or "" for g in m.groups())
            elif has_time:
                matched = self.time_matches(xcond)
            else:
                matched = True
            proceed = matched
            if not matched:
                for xa in xcond.findall("anti-action"):
                    self.add(xa, (), context, name, apps)
                    proceed = True
            else:
                for xa in xcond.findall("action"):
                    self.add(xa, captures, context, name, apps)
            if ((matched and brk == "on-true") or (not matched and brk == "on-false")
                    or brk == "always"):
                break
            if matched and xcond.find("condition") is not None:
                if not self.parse_exten(xcond, name, context, apps) and brk != "never":
                    return False
        return proceed

    def field_value(self, fld: str, where: str) -> str:
        if "$" in fld:
            return self.expand(fld)
        if fld not in PROFILE_FIELDS:
            raise ConfigError(f"{where}: field {fld!r} is no caller-profile field "
                              f"(write ${{{fld}}} for a channel variable)")
        return self.profile.get(fld, "")

    def add(self, xa: ET.Element, captures: tuple[str, ...], context: str, exten: str,
            apps: list) -> None:
        app = xa.get("application", "")
        data = xa.text.strip() if (xa.text or "").strip() else xa.get("data", "")
        if captures:
            data = re.sub(r"\$(\d)", lambda m: captures[int(m.group(1))]
                          if int(m.group(1)) < len(captures) else "", data)
        if xa.get("inline", "").lower() in ("true", "yes", "1", "on"):
            if app not in INLINE_APPS:
                raise Unsupported(f"{exten}: {app} inline")
            self.execute(Step(context, exten, app, data))
            return
        apps.append((context, exten, app, data))

    # ---- time
    def time_matches(self, xcond: ET.Element) -> bool:
        now = self.local_time()
        wday = (now.isoweekday() % 7) + 1  # FreeSWITCH: 1 = Sunday .. 7 = Saturday
        checks = {
            "year": now.year, "mon": now.month, "mday": now.day, "wday": wday,
            "hour": now.hour, "minute": now.minute, "yday": now.timetuple().tm_yday,
            "minute-of-day": now.hour * 60 + now.minute + 1,
        }
        for attr, value in xcond.attrib.items():
            if attr in checks:
                if not _in_ranges(value, checks[attr], attr == "wday"):
                    return False
            elif attr == "time-of-day":
                if not _tod_matches(value, now):
                    return False
            elif attr in TIME_ATTRS:
                raise Unsupported(f"time attribute {attr}")
        return True

    # ---- execution
    def run(self, context: str, destination: str) -> Outcome:
        pending = [(context, destination)]
        while pending:
            ctx, dest = pending.pop()
            self.hops += 1
            if self.hops > 30:
                raise ConfigError(f"transfer loop: {self.out.visited[-10:]}")
            apps = self.hunt(ctx, dest)
            if not apps:
                self.out.end = "no route"  # FreeSWITCH: NO_ROUTE_DESTINATION
                break
            next_hop = self.execute_all(apps)
            if next_hop:
                destination, target = next_hop
                pending.append((target, destination))
        self.out.variables = dict(self.vars)
        self.out.hash = dict(self.call.hash)
        return self.out

    def execute_all(self, apps: list) -> tuple[str, str] | None:
        for ctx, exten, app, data in apps:
            result = self.execute(Step(ctx, exten, app, data))
            if result is not None:
                return result if isinstance(result, tuple) else None
        return None

    def execute(self, step: Step):
        """Run one application. Returns a (context, destination) to transfer to, True to
        stop (the call ended or left the dialplan), or None to go on."""
        data = self.expand(step.data)
        step = Step(step.context, step.extension, step.application, data)
        self.out.steps.append(step)
        app = step.application
        if app in ("set", "export"):
            if app == "export" and data.startswith("nolocal:"):
                return None
            name, _, value = data.partition("=")
            if value == "_undef_":
                self.vars.pop(name, None)
            else:
                self.vars[name] = value
            return None
        if app == "unset":
            self.vars.pop(data, None)
            return None
        if app == "transfer":
            return self.destination(data, step.context)
        if app == "execute_extension":
            dest, ctx = self.destination(data, step.context)
            saved = (self.profile["context"], self.profile["destination_number"])
            apps = self.hunt(ctx, dest)
            self.profile["context"], self.profile["destination_number"] = saved
            return self.execute_all(apps) or None
        if app == "limit":
            return self.limit(data, step.context)
        if app == "play_and_get_digits":
            return self.prompt(data, step.context)
        if app == "read":
            parts = data.split()
            self.out.prompts += 1
            self.vars[parts[3]] = (self.digits.pop(0) if self.digits else None) or ""
            return None
        if app == "hash":
            op, _, rest = data.partition("/")
            realm, _, kv = rest.partition("/")
            key, _, value = kv.partition("/")
            if op == "insert":
                self.call.hash[f"{realm}/{key}"] = value
            elif op == "delete":
                self.call.hash.pop(f"{realm}/{key}", None)
            return None
        if app == "event":
            # mod_dptools' `event` adds the channel's data, as FreeSWITCH events do.
            headers = self.channel_data()
            headers.update(p.split("=", 1) for p in data.split(",") if "=" in p)
            self.out.events.append(headers)
            return None
        if app == "bridge":
            if data in self.call.failing:
                self.vars["originate_disposition"] = "NO_ANSWER"
                if self.get("continue_on_fail").lower() in ("true", "no_answer", "1"):
                    return None
                self.out.end = "hangup NO_ANSWER"
                return True
            self.out.end = f"bridge {data}"
            return True
        if app == "hangup":
            self.out.end = f"hangup {data or 'NORMAL_CLEARING'}"
            return True
        if app == "respond":
            self.out.end = f"respond {data}"
            return True
        if app in ("park", "voicemail", "intercept", "pickup", "att_xfer", "socket"):
            self.out.end = f"{app} {data}".strip()
            if app == "park":
                self.out.parked = {**self.channel_data(), "Event-Name": "CHANNEL_PARK"}
            return True
        return None

    def destination(self, data: str, context: str) -> tuple[str, str]:
        parts = data.split()
        if parts and parts[0] in ("-bleg", "-both"):
            parts = parts[1:]
        if not parts:
            raise ConfigError("transfer without a destination")
        if len(parts) >= 2 and parts[1] != "XML":
            raise Unsupported(f"dialplan {parts[1]!r}")
        return parts[0], parts[2] if len(parts) >= 3 else context

    def limit(self, data: str, context: str):
        parts = data.split()
        if len(parts) < 5 or parts[0] != "hash":
            raise ConfigError(f"limit {data!r}: tongdai uses `limit hash REALM RESOURCE MAX "
                              f"DESTINATION [XML CONTEXT]` (an over-limit destination is required)")
        _, realm, resource, maximum, *rest = parts
        key = f"{realm}/{resource}"
        if self.call.limits.get(key, 0) >= int(maximum):
            if rest[0].startswith("!"):  # `!CAUSE`: hang up with that cause
                self.out.end = f"hangup {rest[0][1:]}"
                return True
            return self.destination(" ".join(rest), context)
        self.call.limits[key] = self.call.limits.get(key, 0) + 1
        return None

    def prompt(self, data: str, context: str):
        parts = data.split()
        if len(parts) < 9:
            raise ConfigError(f"play_and_get_digits {data!r}: needs at least 9 arguments")
        low, high, tries = int(parts[0]), int(parts[1]), int(parts[2])
        var, regexp = parts[7], parts[8]
        failure = parts[10:]
        for _ in range(tries):
            self.out.prompts += 1
            entry = self.digits.pop(0) if self.digits else None
            if entry is not None and low <= len(entry) <= high and re.fullmatch(regexp, entry):
                self.vars[var] = entry
                return None
        self.vars.pop(var, None)
        if failure:
            return self.destination(" ".join(failure), context)
        return None


def _in_ranges(spec: str, value: int, weekday: bool) -> bool:
    for part in spec.split(","):
        part = part.strip().lower()
        lo, sep, hi = part.partition("-")

        def num(text: str) -> int:
            return _WDAYS[text[:3]] if weekday and text[:3] in _WDAYS else int(text)
        if sep:
            a, b = num(lo), num(hi)
            if (a <= value <= b) if a <= b else (value >= a or value <= b):
                return True
        elif num(part) == value:
            return True
    return False


def _tod_matches(spec: str, now: dt.datetime) -> bool:
    def secs(text: str) -> int:
        bits = [int(b) for b in text.split(":")]
        bits += [0] * (3 - len(bits))
        return bits[0] * 3600 + bits[1] * 60 + bits[2]
    cur = now.hour * 3600 + now.minute * 60 + now.second
    for part in spec.split(","):
        start, _, end = part.partition("-")
        a, b = secs(start), secs(end)
        if (a <= cur <= b) if a <= b else (cur >= a or cur <= b):
            return True
    return False


def run(root: ET.Element, call: Call) -> Outcome:
    """Hunt and execute `call` through the dialplan of `root`, following transfers."""
    return _Session(root, copy.deepcopy(call)).run(call.context, call.destination)


def hunt(root: ET.Element, call: Call) -> list[tuple[str, str, str, str]]:
    """Only the hunt of the first context: (context, extension, application, data) rows
    as FreeSWITCH would queue them (inline actions already applied)."""
    return _Session(root, copy.deepcopy(call)).hunt(call.context, call.destination)


def main(argv: list[str] | None = None) -> int:
    """Trace one call: `python -m tests.unit.fsconf.fsxml fs-conf 19009001 --caller
    +84903123456 --at "2026-11-24 10:00" --digits 2,1` (fs-conf is rendered by its start
    script into a temporary folder with a throwaway password)."""
    import argparse
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(prog="fsxml", description=main.__doc__)
    parser.add_argument("conf", help="fs-conf, or a rendered folder / freeswitch.xml")
    parser.add_argument("destination")
    parser.add_argument("--caller", default="+84903123456")
    parser.add_argument("--context", default="public")
    parser.add_argument("--at", default=None, help="local time, YYYY-MM-DD HH:MM (default now)")
    parser.add_argument("--digits", default="", help="comma-separated keys per prompt; - = timeout")
    parser.add_argument("--from-user", default=None, help="USER@DOMAIN: a registered phone")
    ns = parser.parse_args(argv)
    conf = Path(ns.conf)
    if (conf / "bin" / "tongdai-freeswitch").exists():
        target = Path(tempfile.mkdtemp(prefix="fsxml-"))
        env = {"PATH": os.environ.get("PATH", ""), "TONGDAI_FS_CONF_DIR": str(target),
               "TONGDAI_FS_ESL_PASSWORD": "trace-only-password"}
        subprocess.run(["sh", str(conf / "bin" / "tongdai-freeswitch"), "--render-only"],
                       env=env, check=True)
        conf = target
    root = load(conf / "freeswitch.xml" if conf.is_dir() else conf)
    at = dt.datetime.strptime(ns.at, "%Y-%m-%d %H:%M") if ns.at else dt.datetime.now()
    digits = [None if d == "-" else d for d in ns.digits.split(",")] if ns.digits else []
    variables: dict[str, str] = {}
    context, caller = ns.context, ns.caller
    if ns.from_user:
        user, _, domain = ns.from_user.partition("@")
        variables = directory_user(root, user, domain)
        context, caller = variables.get("user_context", context), user
    out = run(root, Call(destination=ns.destination, caller=caller, context=context, at=at,
                         variables=variables, digits=digits))
    for step in out.steps:
        print(f"{step.context:<24} {step.extension:<22} {step.application} {step.data}")
    print(f"-> {out.end}")
    for event in out.events:
        print("event", {k: v for k, v in event.items() if not k.startswith("variable_")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
