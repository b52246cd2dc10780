"""Visibility on the public site: who may see and play what (docs/threat-model.md §grants).

* **Listings** (``/``, ``/api/channels``, ``/api/broadcasts``, ``/api/streams``, a channel's
  past broadcasts) show public broadcasts only; an unlisted or private one is reachable by its
  link alone.
* **Private** broadcasts and channels need a grant on every request: pages, the public JSON,
  playlists (multivariant and media, blocking reloads included), parts, segments and init
  segments, recordings (playlist, segments, ``download.mp4``), thumbnails, WHEP offers, the
  viewer beacon, chat history and the chat WebSocket. Without one: 403, and no title or
  description in the answer.
* **A grant** is a signed token (:mod:`appliance.access.tokens`) presented as the HttpOnly,
  ``SameSite=Lax`` cookie ``hearth_grant_<scope id>`` (scope: the broadcast the grant names,
  else its channel), or as ``Authorization: Bearer <token>`` (players outside a browser).
  The watch link carries the token in its *fragment* (``#grant=…``): never sent to a server,
  so no proxy, cache or access log sees it; ``access.js`` posts it to ``/access/grant``, which
  sets the cookie. A ``?grant=`` query (links typed by hand, clients without JavaScript) is
  exchanged the same way with a redirect that drops it from the address.
* **Caching**: every answer about a private broadcast is ``Cache-Control: private,
  no-store``; deploy/nginx-edge.conf also bypasses its cache for requests carrying a grant
  cookie or an Authorization header. Playlists never embed a token: every viewer's playlist
  is the same bytes.
* **The channel password** (form on the private page) is checked in constant time off the
  loop; wrong guesses count against the same per-address budget as wrong stream keys
  (``hearth block list|lift``), and a blocked address is refused without checking.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from appliance.access import WATCH
from appliance.access.tokens import MAX_TOKEN_CHARS
from appliance.api.http import STATE, client_address
from appliance.domain import ID_RE, Visibility
from appliance.pages import CSP, private_page

if TYPE_CHECKING:
    from appliance.access import AccessService
    from appliance.state import AppState

COOKIE_PREFIX = "hearth_grant_"
GRANT_PARAM = "grant"
PRIVATE_CACHE = "private, no-store"
PRIVATE_HEADERS = {"Cache-Control": PRIVATE_CACHE, "X-Content-Type-Options": "nosniff"}
PASSWORD_GRANT_SECONDS = 12 * 3600.0
"""How long the grant from a correct channel password lasts."""
GRANT_RECHECK_SECONDS = 5.0
"""Open WHEP sessions and chat sockets of private broadcasts are re-checked this often even
without any event, so a grant that expires while its holder watches ends them within this
long (HLS re-checks on every request; docs/threat-model.md §grants)."""
_NEXT_RE = re.compile(r"^/(watch|c)/[a-z0-9]{6,32}$")
_RANK = {Visibility.PUBLIC: 0, Visibility.UNLISTED: 1, Visibility.PRIVATE: 2}


def listed(visibility: Visibility | None) -> bool:
    """Whether listings may show it (public only)."""
    return visibility is Visibility.PUBLIC


def shown_via_channel(broadcast: Visibility | None, channel: Visibility | None) -> bool:
    """A broadcast more restricted than its channel is not reachable through the channel's
    URLs (``/c/{channel}``, ``/hls/{channel}/…``): only by its own link."""
    if broadcast is None or channel is None:
        return False
    return _RANK[broadcast] <= _RANK[channel]


def cookie_name(scope_id: str) -> str:
    return COOKIE_PREFIX + scope_id


def _presented(cookies: Mapping[str, str], authorization: str,
               scope_ids: tuple[str, ...]) -> list[str]:
    tokens = [cookies.get(cookie_name(i), "") for i in scope_ids]
    if authorization[:7].lower() == "bearer ":
        tokens.append(authorization[7:].strip())
    return [t for t in tokens if 0 < len(t) <= MAX_TOKEN_CHARS]


def grant_in(access: AccessService | None, cookies: Mapping[str, str], authorization: str,
             channel_id: str, broadcast_id: str | None) -> bool:
    """A token among the grant cookies or the ``Authorization: Bearer`` header covers the
    channel (and ``broadcast_id``; None: the channel as a whole, which only a channel-wide
    grant covers)."""
    if access is None:
        return False
    scopes = (channel_id,) if broadcast_id is None else (broadcast_id, channel_id)
    return any(access.check(t, channel_id, broadcast_id)
               for t in _presented(cookies, authorization, scopes))


def has_grant(request: web.Request, channel_id: str, broadcast_id: str | None) -> bool:
    """:func:`grant_in` for a request."""
    return grant_in(request.app[STATE].access, request.cookies,
                    request.headers.get("Authorization", ""), channel_id, broadcast_id)


def forbidden_json() -> web.HTTPForbidden:
    return web.HTTPForbidden(text='{"error": "private: open the link you were given"}',
                             content_type="application/json", headers=PRIVATE_HEADERS)


def forbidden_media() -> web.HTTPForbidden:
    return web.HTTPForbidden(text="private: open the link you were given",
                             headers=PRIVATE_HEADERS)


def check_broadcast(request: web.Request, broadcast_id: str, *, json: bool = False) -> bool:
    """Raise 403 unless the request may see the broadcast; returns True when it is private
    (the caller then answers with :data:`PRIVATE_CACHE`). Unknown ids pass (the caller 404s)."""
    service = request.app[STATE].service
    vis = service.visibility(broadcast_id)
    if vis is not Visibility.PRIVATE:
        return False
    channel_id = service.channel_of(broadcast_id)
    if channel_id is None or not has_grant(request, channel_id, broadcast_id):
        raise forbidden_json() if json else forbidden_media()
    request[PRIVATE] = True
    return True


def check_channel(request: web.Request, channel_id: str, *, json: bool = False) -> bool:
    """As :func:`check_broadcast`, for a channel as a whole (its page, its JSON)."""
    vis = request.app[STATE].service.channel_visibility(channel_id)
    if vis is not Visibility.PRIVATE:
        return False
    if not has_grant(request, channel_id, None):
        raise forbidden_json() if json else forbidden_media()
    request[PRIVATE] = True
    return True


PRIVATE: web.RequestKey[bool] = web.RequestKey("hearth_private", bool)
"""Request key set once a check found the target private: :func:`private_middleware` then
marks every answer to it (errors included) ``private, no-store``."""
_R = TypeVar("_R", bound=web.StreamResponse)


def mark_private(resp: _R) -> _R:
    resp.headers["Cache-Control"] = PRIVATE_CACHE
    resp.headers.pop("Access-Control-Allow-Origin", None)
    return resp


@web.middleware
async def private_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Whatever a request about a private broadcast gets (a 404 or 503 too) is not for a
    shared cache."""
    try:
        resp: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if request.get(PRIVATE):
            mark_private(exc)
        raise
    if request.get(PRIVATE) and not resp.prepared:
        mark_private(resp)
    return resp


# ---- pages ------------------------------------------------------------------------------------


def _html(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": CSP, **PRIVATE_HEADERS,
                                 "Referrer-Policy": "no-referrer"})


def private_response(request: web.Request, channel_id: str, message: str = "",
                     status: int = 403) -> web.Response:
    """The private page (no title), with the password form when the channel has one."""
    access = request.app[STATE].access
    has_password = access is not None and access.has_password(channel_id)
    return _html(private_page(password_channel=channel_id if has_password else None,
                              next_path=request.path if _NEXT_RE.fullmatch(request.path)
                              else f"/c/{channel_id}", message=message), status)


def _set_cookie(state: AppState, resp: web.StreamResponse, scope_id: str, token: str,
                expires: int, now: float) -> None:
    resp.set_cookie(cookie_name(scope_id), token, max_age=max(1, int(expires - now)),
                    path="/", httponly=True, samesite="Lax",
                    secure=state.config.public_base_url.startswith("https://"))


def exchange_query_grant(request: web.Request) -> web.Response | None:
    """``?grant=TOKEN`` on a page: set its cookie and redirect (303) to the same page without
    it, so the token leaves the address bar and history. Returns the private page for a bad
    token, None when there is no such query."""
    token = request.query.get(GRANT_PARAM)
    if token is None:
        return None
    state = request.app[STATE]
    grant = _inspect(state.access, token)
    if grant is None or state.access is None:
        return _html(private_page(message="This link is not valid (any more)."), 403)
    rest = [(k, v) for k, v in request.query.items() if k != GRANT_PARAM]
    location = request.path + (f"?{urlencode(rest)}" if rest else "")
    resp = web.HTTPSeeOther(location, headers=PRIVATE_HEADERS)
    _set_cookie(state, resp, grant[0], token, grant[1], state.access.clock())
    raise resp


def _inspect(access: AccessService | None, token: str) -> tuple[str, int] | None:
    """``(scope id, expires)`` of a genuine, current watch grant; else None."""
    if access is None or not 0 < len(token) <= MAX_TOKEN_CHARS:
        return None
    grant = access.inspect(token, purpose=WATCH)
    if grant is None:
        return None
    return grant.broadcast_id or grant.channel_id, grant.expires


async def grant_exchange(request: web.Request) -> web.Response:
    """``POST /access/grant`` (form field ``token``), from access.js: 204 + the cookie, or
    403. Same origin only (the cookie is for this site; a cross-site form cannot plant one:
    its own ``Origin`` is refused)."""
    state = request.app[STATE]
    _same_origin(request)
    form = await request.post()
    token = form.get("token")
    grant = _inspect(state.access, token) if isinstance(token, str) else None
    if grant is None or state.access is None:
        raise web.HTTPForbidden(text="this link is not valid (any more)",
                                headers=PRIVATE_HEADERS)
    resp = web.Response(status=204, headers=PRIVATE_HEADERS)
    _set_cookie(state, resp, grant[0], str(token), grant[1], state.access.clock())
    return resp


def _same_origin(request: web.Request) -> None:
    """Refuse a browser POST sent by another site (its ``Origin`` names another host).

    Hosts are compared without ports: a proxy in front (deploy/nginx-edge.conf sets
    ``Host $host``) drops the port the browser used."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return  # old browsers and non-browser clients send none; the cookie is theirs alone
    origin_host = urlsplit(origin).hostname or ""
    host = urlsplit("//" + request.headers.get("Host", "")).hostname or ""
    public = urlsplit(request.app[STATE].config.public_base_url).hostname or ""
    if origin_host not in (host, public) or not origin_host:
        raise web.HTTPForbidden(text="cross-site request refused", headers=PRIVATE_HEADERS)


async def password_login(request: web.Request) -> web.Response:
    """``POST /access/password/{channel}`` (form: ``password``, ``next``)."""
    state = request.app[STATE]
    channel_id = request.match_info["channel_id"]
    if not ID_RE.fullmatch(channel_id) or state.access is None:
        raise web.HTTPNotFound()
    _same_origin(request)
    form = await request.post()
    password, nxt = form.get("password"), form.get("next")
    target = nxt if isinstance(nxt, str) and _NEXT_RE.fullmatch(nxt) else f"/c/{channel_id}"
    throttle = state.ingest.throttle if state.ingest is not None else None
    addr = client_address(request)
    if throttle is not None and throttle.blocked(addr):
        return _html(private_page(message="Too many wrong passwords from your address; "
                                          "try again later."), 429)
    ok = (isinstance(password, str) and state.access.has_password(channel_id)
          and await state.access.password_matches(channel_id, password))
    if not ok:
        if throttle is not None:
            throttle.failure(addr)
        return _html(private_page(
            password_channel=channel_id if state.access.has_password(channel_id) else None,
            next_path=target, message="Wrong password."), 403)
    if throttle is not None:
        throttle.success(addr)
    token, expires = state.access.mint(channel_id, None, PASSWORD_GRANT_SECONDS)
    resp = web.HTTPSeeOther(target, headers=PRIVATE_HEADERS)
    _set_cookie(state, resp, channel_id, token, expires, state.access.clock())
    raise resp


def add_access_routes(app: web.Application) -> None:
    app.router.add_post("/access/grant", grant_exchange)
    app.router.add_post("/access/password/{channel_id}", password_login)
