"""The browser softphone's session: its answer."""
from __future__ import annotations

from marshmallow import fields

from ..rest import Out


class SoftphoneOut(Out):
    extension = fields.String(required=True, metadata={"description": "the caller's phone"})
    username = fields.String(required=True, metadata={"description": "SIP user (= extension)"})
    password = fields.String(required=True, metadata={
        "description": "this session's SIP password: shown once, never stored; works only "
                       "over WebSocket, until expires_at or the token's end"})
    domain = fields.String(required=True, metadata={"description": "SIP domain and realm"})
    wss_url = fields.String(required=True, metadata={
        "description": "FreeSWITCH's secure WebSocket (TONGDAI_API_SOFTPHONE_WSS_URL)"})
    expires_at = fields.Integer(required=True, metadata={"description": "epoch seconds"})
