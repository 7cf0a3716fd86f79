"""Agent resources: /api/v1/agents/<id>/<command>, /api/v1/agents/<id>/state,
/api/v1/me, /api/v1/click-to-call."""
from __future__ import annotations

from flask import Blueprint

from ..auth import EVERYONE, Principal
from ..rest import endpoint, services
from . import schemas as s

bp = Blueprint("agents", __name__, url_prefix="/api/v1")


def _command(action: str) -> None:
    def run(who: Principal, body: dict, agent_id: str) -> dict:
        return services().agents.command(who, agent_id, action, body["reason"])

    run.__name__ = f"agent_{action}"
    endpoint(bp, f"/agents/<agent_id>/{action}", "POST", roles=EVERYONE,
             body=s.AgentCommandLoad, response=s.CommandOut, status=202,
             summary=f"Agent {action} (a command for the routing worker)")(run)


for _action in s.COMMANDS:
    _command(_action)


@endpoint(bp, "/me", "GET", roles=EVERYONE, response=s.MeOut,
          summary="Who this token is: tenant, user, role and the agent it acts for")
def me(who: Principal, _: None) -> dict:
    return services().agents.me(who)


@endpoint(bp, "/agents/<agent_id>/state", "GET", roles=EVERYONE, response=s.AgentStateOut,
          summary="One agent's state (time in state, pause reason, current call) and the "
                  "calls it answered lately (agent: itself only)")
def agent_state(who: Principal, _: None, agent_id: str) -> dict:
    return services().agents.state(who, agent_id)


@endpoint(bp, "/click-to-call", "POST", roles=EVERYONE, body=s.ClickToCallLoad,
          response=s.ClickToCallOut, status=202,
          summary="Call a customer from the agent's extension (never with a 1800/1900 "
                  "caller id)")
def click_to_call(who: Principal, body: dict) -> dict:
    return services().agents.click_to_call(who, body["agent_id"], body["number"])
