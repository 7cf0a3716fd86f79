"""The web pages (wallboard, reports, agent page, admin console): static files under /web/.

A plain blueprint: add templates or routes here; data comes from the API (/api/v1/live,
/reports, /agents/<id>/state and /popups, /calls/<id>/notes, /click-to-call, /softphone).
Browser libraries from npm (api/web/package.json, installed by deploy/local/setup.sh) are
served as they are from node_modules under /web/vendor/ (ES modules: no build step).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory

bp = Blueprint("web", __name__, url_prefix="/web", static_folder="static",
               static_url_path="/static")
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
#: npm package -> its folder of browser modules
VENDOR = {"sip.js": "sip.js/lib"}


@bp.get("/vendor/<package>/<path:name>")
def vendor(package: str, name: str):
    """A file of a browser library (JavaScript only; no token: it is public code)."""
    if package not in VENDOR or not name.endswith(".js"):
        abort(404)
    return send_from_directory(NODE_MODULES / VENDOR[package], name,
                               mimetype="text/javascript", max_age=3600)
