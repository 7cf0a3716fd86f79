"""What the simulator simulates: agents, callers and the calls between them.

Plain values describing a scenario (no sockets, no threads). ``Node`` turns them into events.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

#: Shorthand caller keys → the channel variables the tongdai dialplan sets.
TONGDAI_VARIABLES = {
    "tenant": "tongdai_tenant",
    "queue": "tongdai_queue",
    "ivr_path": "tongdai_ivr_path",
    "priority": "tongdai_priority",
    "skills": "tongdai_skills",
    "language": "tongdai_language",
    "region": "tongdai_region",
    "vip": "tongdai_vip",
}

AGENT_BEHAVIOURS = ("answer", "no_answer", "busy", "reject")
NUMBER_BEHAVIOURS = ("answer", "no_answer", "busy", "reject", "invalid")


def variable_text(value: Any) -> str:
    """Channel variables are strings: lists join with commas, booleans are true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(variable_text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{variable_text(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Distribution:
    """A random duration in seconds: ``const``, ``exp``, ``uniform``, ``normal``, ``lognormal``."""

    kind: str = "const"
    mean: float = 0.0
    low: float = 0.0
    high: float = 0.0
    sd: float = 0.0

    @classmethod
    def parse(cls, spec: Any, *, name: str = "distribution") -> Distribution | None:
        if spec is None:
            return None
        if isinstance(spec, (int, float)):
            return cls("const", float(spec))
        if not isinstance(spec, dict):
            raise ValueError(f"{name}: expected a number or an object, got {spec!r}")
        kind = spec.get("dist", spec.get("kind", "const"))
        if kind not in ("const", "exp", "uniform", "normal", "lognormal"):
            raise ValueError(f"{name}.dist: unknown distribution {kind!r}")
        mean = float(spec.get("mean", spec.get("value", 0.0)))
        low = float(spec.get("min", 0.0))
        high = float(spec.get("max", mean * 2 if kind == "uniform" else 0.0))
        return cls(kind, mean, low, high, float(spec.get("sd", mean / 4)))

    def sample(self, rng: random.Random) -> float:
        if self.kind == "exp":
            value = rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0
        elif self.kind == "uniform":
            value = rng.uniform(self.low, self.high)
        elif self.kind == "normal":
            value = rng.gauss(self.mean, self.sd)
        elif self.kind == "lognormal":
            if self.mean <= 0:
                return 0.0
            sigma2 = math.log(1 + (self.sd / self.mean) ** 2)
            value = rng.lognormvariate(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2))
        else:
            value = self.mean
        if self.high > 0 and self.kind != "uniform":
            value = min(value, self.high)
        return max(self.low, value)


@dataclass
class AgentSpec:
    """A SIP phone registered as ``ext@domain``.

    ``answer``: ``answer`` (after ``answer_delay``), ``no_answer`` (rings until the originate
    timeout), ``busy`` (486 → USER_BUSY), ``reject`` (603 → CALL_REJECTED, after
    ``answer_delay``). ``register_at`` None = never registers (originate → not registered).
    With ``gateway`` the party is a number behind a SIP trunk (an agent's mobile), reached as
    ``sofia/gateway/<gateway>/<ext>``; it never registers."""

    ext: str
    domain: str | None = None
    name: str | None = None
    answer: str = "answer"
    answer_delay: float = 1.0
    register_at: float | None = 0.0
    unregister_at: float | None = None
    expire_at: float | None = None
    busy_when_in_call: bool = True
    talk: float | None = None
    hangup_by: str | None = None
    gateway: str | None = None
    #: The directory's ``tongdai_outbound`` (classes of numbers the phone may call out);
    #: None = the domain default of fs-conf/directory, ``national,mobile,service``.
    outbound: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any], index: int = 0) -> AgentSpec:
        where = f"agents[{index}]"
        if "ext" not in data:
            raise ValueError(f"{where}.ext: required")
        answer = data.get("answer", "answer")
        if answer not in AGENT_BEHAVIOURS:
            raise ValueError(f"{where}.answer: must be one of {AGENT_BEHAVIOURS}, got {answer!r}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        spec = cls(**{k: v for k, v in data.items()})
        spec.ext = str(spec.ext)
        return spec


@dataclass
class IvrSpec:
    """The IVR step of a call: after ``after`` seconds the caller picks ``choice``; the
    dialplan fires CUSTOM ``tongdai::ivr`` and sets ``variables`` (e.g. the queue).

    ``entry``: the menu's ivr.conf entry for that choice, (action, param) as the api renders
    it (e.g. ``("menu-exec-app", "transfer ivr_main_1 XML public")``). Given, the choice is
    run as FreeSWITCH's mod_ivr does (simulator/dptools.py): only an entry that transfers
    reaches the extension that sets ``variables``, fires the event and parks; any other
    leaves the caller in the menu (its variables set the way `set`/`multiset` split them),
    never parked, until ``patience`` runs out."""

    choice: str
    after: float = 2.0
    menu: str = "main"
    path: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    entry: tuple[str, str] | None = None

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> IvrSpec | None:
        if data is None:
            return None
        variables = {k: variable_text(v) for k, v in (data.get("variables") or {}).items()}
        if "queue" in data:
            variables.setdefault("tongdai_queue", variable_text(data["queue"]))
        return cls(choice=str(data.get("choice", "1")), after=float(data.get("after", 2.0)),
                   menu=str(data.get("menu", "main")),
                   path=None if data.get("path") is None else str(data["path"]),
                   variables=variables, entry=_entry(data.get("entry")))


def _entry(data: Any) -> tuple[str, str] | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("action"), str):
        raise ValueError(f"ivr.entry: must be {{action: ..., param: ...}}, got {data!r}")
    return data["action"], str(data.get("param") or "")


@dataclass
class CallerSpec:
    """A customer calling ``did`` at ``at`` seconds after the scenario starts.

    ``variables`` are what the dialplan sets on the channel (only those given). ``patience``:
    seconds in queue (after park) before hanging up; None waits forever. ``talk``: seconds
    after the bridge before ``hangup_by`` (caller/agent) hangs up; None stays up."""

    number: str
    did: str
    at: float = 0.0
    name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    ivr: IvrSpec | None = None
    patience: float | None = None
    talk: float | None = None
    hangup_by: str = "caller"
    uuid: str | None = None
    answer_delay: float = 0.02

    @classmethod
    def parse(cls, data: dict[str, Any], index: int = 0,
              dids: dict[str, dict[str, str]] | None = None) -> CallerSpec:
        where = f"callers[{index}]"
        for key in ("number", "did"):
            if key not in data:
                raise ValueError(f"{where}.{key}: required")
        did = str(data["did"])
        variables: dict[str, str] = dict((dids or {}).get(did, {}))
        variables.update({k: variable_text(v) for k, v in (data.get("variables") or {}).items()})
        for short, var in TONGDAI_VARIABLES.items():
            if short in data:
                variables[var] = variable_text(data[short])
        hangup_by = data.get("hangup_by", "caller")
        if hangup_by not in ("caller", "agent"):
            raise ValueError(f"{where}.hangup_by: must be caller or agent")
        return cls(number=str(data["number"]), did=did, at=float(data.get("at", 0.0)),
                   name=data.get("name"), variables=variables, ivr=IvrSpec.parse(data.get("ivr")),
                   patience=None if data.get("patience") is None else float(data["patience"]),
                   talk=None if data.get("talk") is None else float(data["talk"]),
                   hangup_by=hangup_by, uuid=data.get("uuid"),
                   answer_delay=float(data.get("answer_delay", 0.02)))


@dataclass
class NumberSpec:
    """An outside number behind the carrier (``sofia/gateway/carrier/<number>``): the
    customer of a click-to-call.

    ``answer``: ``answer`` (after ``answer_delay``, then talks ``talk`` seconds before
    ``hangup_by`` — ``customer`` or ``agent`` — hangs up; None talks until someone else
    hangs up), ``busy`` (486 → USER_BUSY), ``no_answer`` (rings until the bridge's
    ``call_timeout`` → NO_ANSWER), ``reject`` (603 → CALL_REJECTED after ``answer_delay``),
    ``invalid`` (404 → UNALLOCATED_NUMBER)."""

    number: str
    answer: str = "answer"
    answer_delay: float = 2.0
    talk: float | None = 20.0
    hangup_by: str = "customer"

    @classmethod
    def parse(cls, data: dict[str, Any], index: int = 0) -> NumberSpec:
        where = f"numbers[{index}]"
        if "number" not in data:
            raise ValueError(f"{where}.number: required")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        answer = data.get("answer", "answer")
        if answer not in NUMBER_BEHAVIOURS:
            raise ValueError(f"{where}.answer: must be one of {NUMBER_BEHAVIOURS}, got {answer!r}")
        hangup_by = data.get("hangup_by", "customer")
        if hangup_by not in ("customer", "agent"):
            raise ValueError(f"{where}.hangup_by: must be customer or agent")
        talk = data.get("talk", 20.0)
        return cls(number=str(data["number"]), answer=answer,
                   answer_delay=float(data.get("answer_delay", 2.0)),
                   talk=None if talk is None else float(talk), hangup_by=hangup_by)
