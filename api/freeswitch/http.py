"""mod_xml_curl endpoint: POST /api/v1/freeswitch/xml (HTTP basic auth, user `freeswitch`)."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from ..errors import NotFound, Unauthorized
from ..rest import endpoint, services
from .render import render

bp = Blueprint("freeswitch", __name__, url_prefix="/api/v1")


@endpoint(bp, "/freeswitch/xml", "POST", roles=frozenset(), auth="basic",
          produces=("text/xml",),
          summary="mod_xml_curl: directory, dialplan and ivr.conf rendered from the config "
                  "(form-encoded FreeSWITCH request)")
def xml_curl(_who: None, _: None) -> Response:
    password = services().settings.api_xml_curl_password
    if not password:
        raise NotFound("mod_xml_curl endpoint disabled (set TONGDAI_API_XML_CURL_PASSWORD)")
    auth = request.authorization
    if (auth is None or auth.type != "basic" or auth.username != "freeswitch"
            or not hmac.compare_digest((auth.password or "").encode(), password.encode())):
        raise Unauthorized("mod_xml_curl credentials required (basic auth)")
    svc = services()
    return Response(render(svc.view, request.form, svc.calls, svc.audit_monitoring,
                           svc.softphone_a1), mimetype="text/xml")
