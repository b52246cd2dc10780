"""Shared bits of the public HTTP site: the app-state key, content types, CORS headers.

The connection hygiene (per-address cap, request head and body deadlines) lives in
:mod:`appliance.api.conncap`; its names are re-exported here.
"""

from __future__ import annotations

from aiohttp import web

from appliance.api.conncap import AddressCap as AddressCap
from appliance.api.conncap import CappedTCPSite as CappedTCPSite
from appliance.api.conncap import body_timeout_middleware as body_timeout_middleware
from appliance.state import AppState

STATE: web.AppKey[AppState] = web.AppKey("state", AppState)
CORS = {"Access-Control-Allow-Origin": "*"}
CONTENT_TYPES = {
    "m3u8": "application/vnd.apple.mpegurl",
    "m4s": "video/iso.segment",
    "mp4": "video/mp4",
    "js": "text/javascript",
    "css": "text/css",
    "txt": "text/plain",
    "png": "image/png",
    "svg": "image/svg+xml",
}
