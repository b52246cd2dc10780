"""Shared bits of the public HTTP site: the app-state key, content types, CORS headers.

The connection hygiene (per-address cap, request head and body deadlines) lives in
:mod:`appliance.api.conncap`; its names are re-exported here.
"""

from __future__ import annotations

import ipaddress
import re

from aiohttp import web

from appliance.api.conncap import AddressCap as AddressCap
from appliance.api.conncap import CappedTCPSite as CappedTCPSite
from appliance.api.conncap import body_timeout_middleware as body_timeout_middleware
from appliance.state import AppState

STATE: web.AppKey[AppState] = web.AppKey("state", AppState)
CORS = {"Access-Control-Allow-Origin": "*"}
SESSION_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""The token in a WHIP/WHEP session resource's URL (``secrets.token_urlsafe``)."""
_ICE_UFRAG_RE = re.compile(r"^a=ice-ufrag:([A-Za-z0-9+/]{4,256})\r?$", re.M)
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


def status_error(status: int, reason: str, headers: dict[str, str]) -> web.HTTPException:
    """An HTTP error with any ``status`` (a manager's WhipError/WhepError), ``reason`` as
    its plain-text body."""
    exc = web.HTTPException(text=reason, headers=headers)
    exc.set_status(status)
    return exc


def ice_session_etag(answer_sdp: str) -> str | None:
    """The strong entity-tag naming a WHIP/WHEP session's ICE session: the answer's ICE
    ufrag, quoted (RFC 9725 §4.3.1; draft-ietf-wish-whep "HTTP PATCH request usage", optional
    without ICE restarts but given so clients can match sessions); None without a ufrag."""
    ufrag = _ICE_UFRAG_RE.search(answer_sdp)
    return f'"{ufrag[1]}"' if ufrag else None
