"""The browser softphone: /api/v1/softphone (SIP credentials for one page session)."""
from __future__ import annotations

from flask import Blueprint, Response

from ..auth import EVERYONE, Principal
from ..rest import endpoint, services
from . import schemas as s

bp = Blueprint("softphone", __name__, url_prefix="/api/v1")


@endpoint(bp, "/softphone", "POST", roles=EVERYONE, response=s.SoftphoneOut, status=201,
          summary="SIP credentials of the caller's own extension for a browser softphone "
                  "(SIP over secure WebSocket): a new password for this session only, "
                  "valid over WebSocket until the token ends; replaces an earlier session; "
                  "audited")
def start_softphone(who: Principal, _: None) -> Response:
    from flask import jsonify

    out = s.SoftphoneOut().dump(services().softphone.start(who))
    # Credentials: never cached by the browser or a proxy.
    return Response(jsonify(out).get_data(), status=201, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


@endpoint(bp, "/softphone", "DELETE", roles=EVERYONE, status=204,
          summary="End the caller's softphone session (its password stops working)")
def stop_softphone(who: Principal, _: None) -> None:
    services().softphone.stop(who)
