"""The web pages (wallboard, reports, agent page): static files under /web/.

A plain blueprint: add templates or routes here; data comes from the API (/api/v1/live,
/reports, /agents/<id>/state and /popups, /calls/<id>/notes, /click-to-call).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__, url_prefix="/web", static_folder="static",
               static_url_path="/static")
