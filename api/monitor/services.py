"""Live monitoring of a call in progress: listen, whisper, barge with FreeSWITCH `eavesdrop`.

Two ways in, the same rules (only extensions an admin marked `can_monitor: true`; the agent
must have a call in progress; every monitoring written to the audit log):

1. **From the phone** (feature codes): the supervisor's phone dials `*33<agent ext>`
   (listen), `*34<agent ext>` (whisper to the agent) or `*35<agent ext>` (barge: talk to
   both); FreeSWITCH asks the dialplan over mod_xml_curl and the API renders `eavesdrop`
   on the agent's leg of its current call (`eavesdrop_actions`). FreeSWITCH executes it;
   no routing command is involved. Audited as `call.monitor.<mode>` by `ext:<extension>`.
2. **From the API** (`POST /api/v1/monitor`, supervisors and admins): `MonitorService`
   writes a `monitor_requested` command (call id = the agent's current call) to
   `tongdai.cc.commands.v1`; the routing worker turns it into a `monitor_call` decision and
   the actuator rings the supervisor's extension and joins it to the agent's leg.
   `POST /api/v1/monitor/<monitor_id>/mode` writes `monitor_mode_requested` (the actuator
   sends the DTMF key below to the supervisor's leg). Audited as `call.monitor.<mode>` (start)
   and `call.monitor.mode` (switch) by the token's user, with the monitor id.

Who may switch a monitoring's mode: the user who started it, or an admin of its tenant.
The API keeps no monitoring table of its own: the start's audit entry is the record (every
API process indexes the audit topic from the beginning, so any process, also after a
restart, knows who started which monitoring). Whether the monitoring still runs is the
router's business: a switch of an ended one is refused there (`command_refused`).

DTMF during an eavesdrop (`eavesdrop_enable_dtmf=true`; FreeSWITCH switch_ivr_async.c,
`switch_ivr_eavesdrop_session`; the eavesdropped leg here is the agent's):
`0` listen only, `2` speak to the eavesdropped leg (whisper to the agent), `1` speak to the
other half (the customer only), `3` three-way (barge), `*` end. The start mode comes from
channel variables read by mod_dptools: `eavesdrop_whisper_bleg=true` is the `2` mode
(ED_MUX_WRITE: mixed into what the agent's phone hears), `eavesdrop_whisper_aleg=true` the
`1` mode (ED_MUX_READ: mixed into what the agent's leg sends on, i.e. what the customer
hears); both together are `3`.

The agent's current leg comes from the routing facts (`call_answered` carries the offer id,
which is the agent leg's uuid; `call_ended`/`call_abandoned` end it). Calls answered before
this process started are taken from the router's live view (`tongdai.live.v1`).
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any

from routing.contract import Envelope, topics

from ..auth import ADMIN, Principal
from ..bus import Bus, envelope
from ..config.view import ConfigView
from ..errors import Conflict, Forbidden, NotFound
from ..live.services import LiveView

#: feature code digit (*3<d><agent ext>) -> mode
MODES = {"3": "listen", "4": "whisper", "5": "barge"}
MODE_NAMES = ("listen", "whisper", "barge")
#: eavesdrop's DTMF key of each mode (switch_ivr_async.c), the eavesdropped leg being the agent's
DTMF = {"listen": "0", "whisper": "2", "barge": "3"}
ENDED_KEPT = 10_000
#: how long a mode switch waits for the start's audit entry written by another API process
START_LAG_S = 1.0


class CallsInProgress:
    """(tenant, agent) -> (call id, agent leg uuid) of connected calls, from cc events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_agent: dict[tuple[str, str], tuple[str, str]] = {}
        self._ended: OrderedDict[tuple[str, str], None] = OrderedDict()

    def apply(self, env: Envelope) -> None:
        p = env.payload
        with self._lock:
            if env.type == "call_answered" and env.call_id:
                self._by_agent[(env.tenant, p["agent_id"])] = (env.call_id, p["offer_id"])
            elif env.type in ("call_ended", "call_abandoned"):
                for key, (call_id, _) in list(self._by_agent.items()):
                    if key[0] == env.tenant and call_id == env.call_id:
                        del self._by_agent[key]
                if env.call_id:
                    self._ended[(env.tenant, env.call_id)] = None
                    while len(self._ended) > ENDED_KEPT:
                        self._ended.popitem(last=False)

    def ended(self, tenant: str, call_id: str) -> bool:
        """True if this process saw the call end."""
        with self._lock:
            return (tenant, call_id) in self._ended

    def of_agent(self, tenant: str, agent_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._by_agent.get((tenant, agent_id))


def eavesdrop_actions(mode: str, leg: str) -> list[tuple[str, str]]:
    """Dialplan applications that join the caller (the supervisor) to the agent's `leg` in
    `mode`. mod_dptools maps `eavesdrop_whisper_bleg` to ED_MUX_WRITE (the supervisor is
    mixed into what `leg`'s phone hears: the agent) and `eavesdrop_whisper_aleg` to
    ED_MUX_READ (mixed into what `leg` sends on: the customer)."""
    actions = [("answer", ""), ("set", "eavesdrop_enable_dtmf=true"),
               ("set", f"tongdai_monitor_mode={mode}")]
    if mode in ("whisper", "barge"):
        actions.append(("set", "eavesdrop_whisper_bleg=true"))
    if mode == "barge":
        actions.append(("set", "eavesdrop_whisper_aleg=true"))
    actions.append(("eavesdrop", leg))
    return actions


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class MonitorService:
    """Live monitoring as commands for the routing worker (`POST /api/v1/monitor`)."""

    def __init__(self, view: ConfigView, calls: CallsInProgress, live: LiveView,
                 audit: Any, bus: Bus, topic: str) -> None:
        self.view = view
        self.calls = calls
        self.live = live
        self.audit = audit
        self.bus = bus
        self.topic = topic

    def current_call(self, tenant: str, agent_id: str) -> str | None:
        """The call id of the agent's call in progress: from the routing facts this process
        followed, else from the router's live view (a call answered before it started)."""
        known = self.calls.of_agent(tenant, agent_id)
        if known is not None:
            return known[0]
        for agent in self.live.state(tenant)["agents"]:
            call_id = agent.get("call_id")
            if (agent.get("agent_id") == agent_id and agent.get("state") == "on_call"
                    and call_id and not self.calls.ended(tenant, call_id)):
                return str(call_id)
        return None

    def own_extension(self, who: Principal) -> str:
        """The caller's phone: its user record's `extension`, else its agent's extension."""
        user = self.view.get(who.tenant, "user", who.user)
        data = user.data if user else {}
        if data.get("extension"):
            return str(data["extension"])
        agent = self.view.get(who.tenant, "agent", str(data["agent_id"])) \
            if data.get("agent_id") else None
        if agent is not None and agent.data.get("extension"):
            return str(agent.data["extension"])
        raise Conflict(f"user {who.user!r} has no extension of its own: give `extension` or "
                       f"set the user's `extension`",
                       [{"field": "extension", "rule": "required when the user record has "
                                                       "no extension"}])

    def check_may_monitor(self, tenant: str, extension: str) -> None:
        entry = self.view.get(tenant, "extension", extension)
        if entry is None:
            raise Forbidden(f"extension {extension} may not monitor: no such extension",
                            [{"field": "extension", "rule": "must be an extension with "
                                                            "can_monitor: true"}])
        if not entry.data.get("can_monitor"):
            raise Forbidden(f"extension {extension} may not monitor: an admin must set its "
                            f"can_monitor: true",
                            [{"field": "extension", "rule": "must be an extension with "
                                                            "can_monitor: true"}])

    def start(self, who: Principal, agent_id: str, mode: str,
              extension: str | None) -> dict[str, Any]:
        """Check, then write `monitor_requested` and its audit entry."""
        agent = self.view.get(who.tenant, "agent", agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r}")
        extension = extension or self.own_extension(who)
        self.check_may_monitor(who.tenant, extension)
        if agent.data.get("extension") == extension:
            raise Conflict(f"extension {extension} is agent {agent_id!r}'s own phone",
                           [{"field": "extension", "rule": "must not be the monitored "
                                                           "agent's extension"}])
        call_id = self.current_call(who.tenant, agent_id)
        if call_id is None:
            raise Conflict(f"agent {agent_id!r} has no call in progress",
                           [{"field": "agent_id", "rule": "must have a call in progress"}])
        monitor_id = str(uuid.uuid4())  # becomes the supervisor leg's uuid
        payload = {"monitor_id": monitor_id, "agent_id": agent_id, "extension": extension,
                   "mode": mode, "requested_by": who.user}
        env = envelope("monitor_requested", who.tenant, payload, call_id=call_id,
                       source=f"api:{who.user}")
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        self.audit.record(who, f"call.monitor.{mode}", f"call/{call_id}", {
            "monitor_id": monitor_id, "agent_id": agent_id, "extension": extension,
            "via": "api", "command_id": env.event_id})
        return {"monitor_id": monitor_id, "call_id": call_id, "agent_id": agent_id,
                "extension": extension, "mode": mode, "command_id": env.event_id}

    def started(self, tenant: str, monitor_id: str) -> dict[str, Any] | None:
        """The audit entry of the start of a monitoring of the tenant, if there is one."""
        if not _is_uuid(monitor_id):
            return None  # never one of ours: answer at once
        starts = {f"call.monitor.{m}" for m in MODE_NAMES}

        def match(e: dict[str, Any]) -> bool:
            return e["action"] in starts and e["detail"].get("monitor_id") == monitor_id

        return self.audit.find(tenant, match, timeout_s=START_LAG_S)

    def switch(self, who: Principal, monitor_id: str, mode: str) -> dict[str, Any]:
        """Write `monitor_mode_requested` for a monitoring the caller started (or, for an
        admin, any of its tenant's)."""
        start = self.started(who.tenant, monitor_id)
        if start is None:
            raise NotFound(f"no monitoring {monitor_id!r}")
        if start["user"] != who.user and who.role != ADMIN:
            raise Forbidden("only the user who started a monitoring (or an admin) may "
                            "switch its mode")
        call_id = start["target"].split("/", 1)[1]
        detail = start["detail"]
        env = envelope("monitor_mode_requested", who.tenant,
                       {"monitor_id": monitor_id, "mode": mode}, call_id=call_id,
                       source=f"api:{who.user}")
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        self.audit.record(who, "call.monitor.mode", f"call/{call_id}", {
            "monitor_id": monitor_id, "mode": mode, "agent_id": detail.get("agent_id"),
            "extension": detail.get("extension"), "via": "api", "command_id": env.event_id})
        return {"monitor_id": monitor_id, "call_id": call_id,
                "agent_id": detail.get("agent_id"), "extension": detail.get("extension"),
                "mode": mode, "command_id": env.event_id}
