"""One simulated FreeSWITCH node: phones that register, call legs, the dialplan, api commands
and the events they fire. ``Node`` puts the concerns together, one module each:

- ``core``: options, state, clock, event firing (every concern builds on it);
- ``channels``: a leg's hangup, bridge and recording;
- ``dialplan``: what the node runs for a caller and in a context (fs-conf's model);
- ``originate``: legs the node dials (originate, the bridge to the carrier);
- ``applications``: eavesdrop, DTMF, applications a command interrupts;
- ``transfers``: a phone's blind transfer (REFER) of the party bridged to it;
- ``commands``: the api commands;
- ``server`` (not mixed in): the Event Socket that clients talk to.

Headers follow the real captures in ``tests/fixtures/esl`` (``headers``). Everything runs
under ``Node.lock``: scheduled callbacks (on the scheduler thread) and commands (on client
threads) never interleave.
"""

from __future__ import annotations

import time

from .applications import Applications
from .channels import Channels
from .commands import Commands
from .dialplan import Dialplan
from .headers import user_pairs
from .model import AgentSpec
from .originate import Originate
from .state import Agent, Channel, Monitor
from .syntax import parse_dtmf, parse_originate
from .transfers import Transfers

__all__ = ["Agent", "Channel", "Monitor", "Node", "parse_dtmf", "parse_originate"]


class Node(Commands, Applications, Originate, Dialplan, Channels, Transfers):
    """A FreeSWITCH node as seen over ESL. Listeners get every event fired (an ``Event`` with
    decoded values); they run under the node lock and must not block."""

    # ------------------------------------------------------------------ registrations

    def add_agent(self, spec: AgentSpec, *, at: float | None = None) -> Agent:
        """Add an agent phone; it registers ``spec.register_at`` seconds from now (or ``at``)."""
        with self.lock:
            domain = f"gateway:{spec.gateway}" if spec.gateway else (spec.domain or self.domain)
            agent = Agent(spec, domain, 5070 + len(self.agents) + 1)
            self.agents[agent.key] = agent
            if spec.gateway:  # a number behind a SIP trunk: always reachable, never registers
                agent.registered = True
                return agent
            start = self.clock.now() if at is None else at
            if spec.register_at is not None:
                self._at(start + spec.register_at, lambda: self.register(agent.key))
            if spec.unregister_at is not None:
                self._at(start + spec.unregister_at, lambda: self.unregister(agent.key))
            if spec.expire_at is not None:
                self._at(start + spec.expire_at, lambda: self.unregister(agent.key, expire=True))
            return agent

    def register(self, key: str) -> None:
        """The agent's phone REGISTERs: CUSTOM sofia::register."""
        with self.lock:
            agent = self.agents[key]
            agent.registered = True
            agent.call_id = (agent.call_id
                             or f"{self.rng.randrange(1, 99999)}-{agent.port}@127.0.0.1")
            ext, dom = agent.ext, agent.domain
            pairs = self.core_pairs("CUSTOM", subclass="sofia::register")
            pairs += [
                ("profile-name", "internal"), ("from-user", ext), ("from-host", dom),
                ("presence-hosts", dom),
                ("contact", f'"" <sip:{ext}@127.0.0.1:{agent.port};transport=UDP>'),
                ("call-id", agent.call_id), ("rpid", "unknown"), ("status", "Registered(UDP)"),
                ("expires", "3600"), ("to-user", ext), ("to-host", dom),
                ("network-ip", "127.0.0.1"), ("network-port", str(agent.port)),
                ("username", ext), ("realm", dom), ("user-agent", f"sim-agent-{ext}"),
            ]
            pairs += user_pairs(agent)
            self.emit(pairs)

    def unregister(self, key: str, *, expire: bool = False) -> None:
        """REGISTER with Expires: 0 (sofia::unregister) or registration timeout (sofia::expire)."""
        with self.lock:
            agent = self.agents[key]
            if not agent.registered:
                return
            agent.registered = False
            ext, dom = agent.ext, agent.domain
            contact = f'"" <sip:{ext}@127.0.0.1:{agent.port};transport=UDP>'
            if expire:
                pairs = self.core_pairs("CUSTOM", subclass="sofia::expire")
                pairs += [("profile-name", "internal"), ("call-id", agent.call_id),
                          ("user", ext), ("username", ext), ("host", dom), ("contact", contact),
                          ("expires", str(int(self.clock.now()))),
                          ("user-agent", f"sim-agent-{ext}")]
            else:
                pairs = self.core_pairs("CUSTOM", subclass="sofia::unregister")
                pairs += [("profile-name", "internal"), ("from-user", ext), ("from-host", dom),
                          ("contact", contact), ("call-id", agent.call_id), ("rpid", "unknown"),
                          ("status", "Unregistered(UDP)"), ("expires", "0"), ("to-user", ext),
                          ("to-host", dom), ("network-ip", "127.0.0.1"),
                          ("network-port", str(agent.port)), ("username", ext), ("realm", dom),
                          ("user-agent", f"sim-agent-{ext}")]
            self.emit(pairs)


    # ------------------------------------------------------------------ helpers for tests

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait (wall time) until no channel is left. True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.channels:
                    return True
            time.sleep(0.01)
        return False
