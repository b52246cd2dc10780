"""Shared bits of the public HTTP site: the app-state key, content types, CORS headers.

The connection hygiene (per-address cap, request head and body deadlines) lives in
:mod:`appliance.api.conncap`; its names are re-exported here.
"""

from __future__ import annotations

import ipaddress

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


def _is_trusted_proxy(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def client_address(request: web.Request) -> str:
    """The viewer's address: the peer, or behind a local reverse proxy (Caddy, the nginx edge;
    both connect over loopback) the address that proxy appended to ``X-Forwarded-For``.

    Only a loopback peer is trusted to say who the client is; anyone else's header is ignored.
    """
    remote = request.remote or ""
    if _is_trusted_proxy(remote):
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()[:64]
        if last:
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass
    return remote
