"""The web pages (the wallboard is built on this): static files under /web/.

A plain blueprint: add templates or routes here; data comes from /api/v1/live(/stream).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__, url_prefix="/web", static_folder="static",
               static_url_path="/static")
