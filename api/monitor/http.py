"""Live monitoring resources: /api/v1/monitor, /api/v1/monitor/<monitor_id>/mode."""
from __future__ import annotations

from flask import Blueprint

from ..auth import SUPERVISORS, Principal
from ..rest import endpoint, services
from . import schemas as s

bp = Blueprint("monitor", __name__, url_prefix="/api/v1")


@endpoint(bp, "/monitor", "POST", roles=SUPERVISORS, body=s.MonitorLoad,
          response=s.MonitorOut, status=202,
          summary="Listen to, whisper to or barge into an agent's call in progress: the "
                  "supervisor's extension is called and joined to it (a command for the "
                  "routing worker; audited). 409 when the agent has no call in progress")
def start_monitor(who: Principal, body: dict) -> dict:
    return services().monitor.start(who, body["agent_id"], body["mode"], body.get("extension"))


@endpoint(bp, "/monitor/<monitor_id>/mode", "POST", roles=SUPERVISORS,
          body=s.MonitorModeLoad, response=s.MonitorOut, status=202,
          summary="Switch a monitoring to another mode (the user who started it, or an "
                  "admin; a command for the routing worker; audited)")
def switch_monitor_mode(who: Principal, body: dict, monitor_id: str) -> dict:
    return services().monitor.switch(who, monitor_id, body["mode"])
