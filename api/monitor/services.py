"""Live monitoring of a call in progress: listen, whisper, barge with FreeSWITCH `eavesdrop`.

How it runs without a new routing command: the supervisor's phone dials a feature code,
`*33<agent ext>` (listen), `*34<agent ext>` (whisper to the agent) or `*35<agent ext>`
(barge: talk to both); FreeSWITCH asks the dialplan over mod_xml_curl, and the API renders
`eavesdrop` on the agent's leg of its current call. During the call the supervisor switches
mode with DTMF (`eavesdrop_enable_dtmf`): 0 listen, 2 whisper to the agent, 1 barge.
Only extensions an admin marked `can_monitor: true` may use it; every monitoring is
written to the audit log (who: the extension; what: the call and mode).

The agent's current leg comes from the routing facts (`call_answered` carries the offer id,
which is the agent leg's uuid; `call_ended`/`call_abandoned` end it).
"""
from __future__ import annotations

import threading

from routing.contract import Envelope

MODES = {"3": "listen", "4": "whisper", "5": "barge"}


class CallsInProgress:
    """(tenant, agent) -> (call id, agent leg uuid) of connected calls, from cc events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_agent: dict[tuple[str, str], tuple[str, str]] = {}

    def apply(self, env: Envelope) -> None:
        p = env.payload
        with self._lock:
            if env.type == "call_answered" and env.call_id:
                self._by_agent[(env.tenant, p["agent_id"])] = (env.call_id, p["offer_id"])
            elif env.type in ("call_ended", "call_abandoned"):
                for key, (call_id, _) in list(self._by_agent.items()):
                    if key[0] == env.tenant and call_id == env.call_id:
                        del self._by_agent[key]

    def of_agent(self, tenant: str, agent_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._by_agent.get((tenant, agent_id))


def eavesdrop_actions(mode: str, leg: str) -> list[tuple[str, str]]:
    """Dialplan applications that join the caller (the supervisor) to `leg` in `mode`."""
    actions = [("answer", ""), ("set", "eavesdrop_enable_dtmf=true"),
               ("set", "eavesdrop_indicate_failed=tone_stream://%(500,0,320)"),
               ("set", f"tongdai_monitor_mode={mode}")]
    if mode in ("whisper", "barge"):
        actions.append(("set", "eavesdrop_whisper_aleg=true"))
    if mode == "barge":
        actions.append(("set", "eavesdrop_whisper_bleg=true"))
    actions.append(("eavesdrop", leg))
    return actions
