"""HLS and LL-HLS serving: playlists and media objects from memory, with viewer counting.

Only well-formed names resolve (docs/threat-model.md §paths):
``^[a-z0-9_-]{1,64}\\.(m3u8|m4s|mp4)$``, looked up in the stream's in-memory muxer; nothing
here touches the filesystem.

Playlists: ``index.m3u8`` is the multivariant playlist (the URL players are given), listing
``media.m3u8`` (the source) and, when the channel's quality ladder is on, each served
rendition's ``{preset}/media.m3u8`` (``480p/media.m3u8``; its parts and segments beside it).
Every LL media playlist of a laddered broadcast ends with an EXT-X-RENDITION-REPORT per other
rendition (rfc8216bis §4.4.5.4). Every viewer gets the
same URLs (no session tokens), so an edge cache can share responses (deploy/nginx-edge.conf);
viewers are counted on part/segment fetches and the watch page's beacon (appliance/viewers.py).
A plain request (no ``_HLS_msn``) waits for the first complete segment, so RFC 8216 clients
never see a parts-only playlist.

Low latency (draft-pantos-hls-rfc8216bis §6.2.5): with ``hls.low_latency`` the playlist carries
parts, server control and a preload hint; one playlist serves LL and plain clients alike.

* Blocking playlist reload: ``_HLS_msn=M[&_HLS_part=N]`` parks the request until the playlist
  holds segment M (part N of segment M, "or later"), then answers with the new playlist.
  Requests are released from the muxer's ``on_update`` callback, i.e. in the same loop
  iteration that the part lands. Malformed values, ``_HLS_part`` without ``_HLS_msn``, an msn
  more than two past the last one, or a part past the Advance Part Limit get 400 at once
  (docs/threat-model.md §hls-blocking); a request still unsatisfied after three target
  durations gets 503 (§6.2.5.2). Parked requests are capped in total and per client address
  (429).
* Delta updates: ``_HLS_skip=YES`` (or ``v2``) renders EXT-X-SKIP when the playlist is longer
  than CAN-SKIP-UNTIL.
* Preload hints: a request for the hinted (not yet existing) part is held until the part is
  published (§4.4.5.3), or answered 404 if the segment ended before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from appliance.api.access import check_broadcast, mark_private, shown_via_channel
from appliance.api.http import CONTENT_TYPES, CORS, STATE, client_address
from appliance.api.payload import ChunksPayload
from appliance.config import HlsConfig
from appliance.domain import ID_RE
from appliance.viewers import PLAYER_ID_RE
from media.hls.playlist import render_multivariant_playlist, render_rendition_reports
from media.hls.segmenter import HlsMuxer

if TYPE_CHECKING:
    from appliance.live import LiveBroadcast

HLS_NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}\.(m3u8|m4s|mp4)$")
RENDITION_RE = re.compile(r"^[0-9]{3,4}p$")
"""A ladder rendition's path segment: a preset name (media/ladder.py)."""
PART_NAME_RE = re.compile(r"^part-(0|[1-9][0-9]{0,17})-(0|[1-9][0-9]{0,5})\.m4s$")
MSN_RE = re.compile(r"^(0|[1-9][0-9]{0,17})$")
PART_RE = re.compile(r"^(0|[1-9][0-9]{0,5})$")

MSN_AHEAD_LIMIT = 2
"""rfc8216bis §6.2.5.2: an _HLS_msn more than two past the last segment gets 400."""
BLOCK_TARGET_DURATIONS = 3
"""rfc8216bis §6.2.5.2: answer 503 when a blocking request is not satisfied in 3 × TD."""

PLAYLIST_HEADERS = {**CORS, "Content-Type": CONTENT_TYPES["m3u8"],
                    "Cache-Control": "public, max-age=1"}
"""A plain (non-blocking) playlist changes every part: caches may reuse it for about a part
(1 s: HTTP and nginx count whole seconds)."""


def _blocking_headers(target_duration: int) -> dict[str, str]:
    """A blocking response answers "(msn, part) or later" (rfc8216bis §6.2.5.2): the same
    bytes stay a correct answer for every viewer asking for that key, so a cache keyed on the
    delivery directives (deploy/nginx-edge.conf) may share it for a target duration."""
    return {**PLAYLIST_HEADERS, "Cache-Control": f"public, max-age={target_duration}"}
MEDIA_CACHE_CONTROL = "public, max-age=60"
"""A part, segment or init segment never changes while its stream is live, and leaves the
playlist within ~2 windows; 60 s outlives that. Not longer: a *new* broadcast on the same path
numbers its segments from 0 again."""


def advance_part_limit(part_target: float) -> int:
    """rfc8216bis §6.2.5.2: 3 / PART-TARGET parts when the target is under a second, else 3."""
    return math.ceil(3 / part_target) if part_target < 1 else 3


class _MuxerWatch:
    """Parked requests of one muxer, keyed by what they wait for; woken by ``on_update``."""

    def __init__(self, muxer: HlsMuxer) -> None:
        self.muxer = muxer
        # (msn, part) → futures; part -1 means "the complete segment msn".
        self.waiters: dict[tuple[int, int], list[asyncio.Future[None]]] = {}
        self._bodies: dict[bool, tuple[str, bytes]] = {}
        self._previous = muxer.on_update
        muxer.on_update = self._on_update

    @staticmethod
    def of(muxer: HlsMuxer) -> _MuxerWatch | None:
        """The muxer's watch, found through its ``on_update`` hook (set only here).

        Kept on the muxer's own callback rather than in a weak mapping: the watch lives as long
        as its muxer, and compiled muxers (media/accel.py) take no weak references.
        """
        owner = getattr(muxer.on_update, "__self__", None)
        return owner if isinstance(owner, _MuxerWatch) and owner.muxer is muxer else None

    def _on_update(self) -> None:
        if self._previous is not None:
            self._previous()
        self.release()

    def satisfied(self, msn: int, part: int) -> bool:
        m = self.muxer
        if m.ended:
            return True
        if part < 0:
            last = m.last_segment_msn
            return last is not None and last >= msn
        if m.last_msn is None or m.last_part is None:
            return False
        return (m.last_msn, m.last_part) >= (msn, part)

    def release(self) -> None:
        for key in [k for k in self.waiters if self.satisfied(*k)]:
            for fut in self.waiters.pop(key):
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, msn: int, part: int, timeout: float) -> bool:
        """Wait until (msn, part) is available; False on timeout."""
        if self.satisfied(msn, part):
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = (msn, part)
        self.waiters.setdefault(key, []).append(fut)
        try:
            async with asyncio.timeout(timeout):
                await fut
            return True
        except TimeoutError:
            return False
        finally:
            futs = self.waiters.get(key)
            if futs is not None:
                with contextlib.suppress(ValueError):
                    futs.remove(fut)
                if not futs:
                    del self.waiters[key]

    def body(self, low_latency: bool, skip: bool) -> bytes | None:
        """The playlist as bytes, encoded once per muxer change (not once per request)."""
        text = self.muxer.playlist(low_latency=low_latency, skip=skip)
        if text is None:
            return None
        cached = self._bodies.get(skip)
        if cached is not None and cached[0] is text:
            return cached[1]
        data = text.encode()
        self._bodies[skip] = (text, data)
        return data


@dataclass
class BlockingGate:
    """Every parked LL-HLS request goes through here: caps and per-muxer wait lists."""

    parked: int = 0
    per_client: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    """Requests answered, by kind (multivariant, playlist, init, seg, part): /metrics."""

    def count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    def watch(self, muxer: HlsMuxer) -> _MuxerWatch:
        return _MuxerWatch.of(muxer) or _MuxerWatch(muxer)

    @contextlib.contextmanager
    def slot(self, client: str, config: HlsConfig) -> Iterator[None]:
        if self.parked >= config.max_blocking:
            self.refused += 1
            raise web.HTTPTooManyRequests(text="too many blocking playlist requests",
                                          headers={**CORS, "Retry-After": "1"})
        if self.per_client.get(client, 0) >= config.max_blocking_per_ip:
            self.refused += 1
            raise web.HTTPTooManyRequests(text="too many blocking playlist requests from you",
                                          headers={**CORS, "Retry-After": "1"})
        self.parked += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        try:
            yield
        finally:
            self.parked -= 1
            left = self.per_client[client] - 1
            if left:
                self.per_client[client] = left
            else:
                del self.per_client[client]


HLS_GATE: web.AppKey[BlockingGate] = web.AppKey("hls_gate", BlockingGate)


def _bad(text: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=text, headers=CORS)


def _block_timeout(config: HlsConfig, muxer: HlsMuxer) -> float:
    return config.block_timeout or BLOCK_TARGET_DURATIONS * muxer.target_duration


def parse_blocking(query: Mapping[str, str], muxer: HlsMuxer
                   ) -> tuple[int | None, int | None, bool]:
    """Validate ``_HLS_msn``/``_HLS_part``/``_HLS_skip``; raises HTTP 400 on abuse."""
    get = query.get
    raw_msn, raw_part, raw_skip = get("_HLS_msn"), get("_HLS_part"), get("_HLS_skip")
    skip = False
    if raw_skip is not None:
        if raw_skip not in ("YES", "v2"):
            raise _bad("_HLS_skip must be YES or v2")
        skip = True
    if raw_msn is None:
        if raw_part is not None:
            raise _bad("_HLS_part needs _HLS_msn")
        return None, None, skip
    if not MSN_RE.fullmatch(raw_msn):
        raise _bad("_HLS_msn must be a non-negative integer")
    msn = int(raw_msn)
    part: int | None = None
    if raw_part is not None:
        if not PART_RE.fullmatch(raw_part):
            raise _bad("_HLS_part must be a non-negative integer")
        part = int(raw_part)
    last_msn = muxer.last_msn if muxer.last_msn is not None else -1
    if msn > last_msn + MSN_AHEAD_LIMIT:
        raise _bad("_HLS_msn is too far in the future")
    if part is not None:
        limit = advance_part_limit(muxer.part_target)
        last_part = muxer.last_part if muxer.last_part is not None else -1
        ahead = part - last_part if msn == last_msn else part + 1 if msn > last_msn else 0
        if msn > last_msn + 1 and part > 0:
            ahead = limit + 1
        if ahead > limit:
            raise _bad("_HLS_part is too far in the future")
    return msn, part, skip


MULTIVARIANT_NAME = "index.m3u8"
"""The entry playlist (README, Nostr ``streaming`` tag, watch page): a multivariant playlist."""
MEDIA_PLAYLIST_NAME = "media.m3u8"
"""The media playlist it references; blocking reloads and delta updates happen here."""
PLAYER_HEADER = "X-Hearth-Player"
"""Header the watch page adds to media requests (its random player id, for viewer counting)."""
FIRST_SEGMENT_RETRY_AFTER = "1"


def _count_viewer(request: web.Request, ls: LiveBroadcast, *, player_id: str | None,
                  low_latency: bool = False) -> None:
    state = request.app[STATE]
    address = client_address(request)
    tokens = state.tokens
    user_agent = request.headers.get("User-Agent", "")
    session = tokens.session_key(address, user_agent, player_id)
    if ls.touch_viewer(session, tokens.address_key(address)) and state.analytics is not None:
        # Only sessions the per-address cap admitted (docs/threat-model.md §viewer-counts).
        state.analytics.hls_hit(ls.broadcast_id, session, address, user_agent,
                                low_latency=low_latency)


def _note_blocking_reload(request: web.Request, ls: LiveBroadcast) -> None:
    """A blocking reload marks its session LL-HLS for analytics (player kind)."""
    state = request.app[STATE]
    if state.analytics is not None and not ls.ended:
        session = state.tokens.session_key(client_address(request),
                                           request.headers.get("User-Agent", ""),
                                           request.headers.get(PLAYER_HEADER))
        state.analytics.blocking_reload(ls.broadcast_id, session)


async def _await_first(request: web.Request, muxer: HlsMuxer, *, part: int) -> None:
    """Hold a request until the stream has its first part (``part=0``) or complete segment
    (``part=-1``); 503 with Retry-After if that takes longer than a blocking reload may."""
    config = request.app[STATE].config.hls
    gate = request.app[HLS_GATE]
    watch = gate.watch(muxer)
    if watch.satisfied(0, part):
        return
    with gate.slot(client_address(request), config):
        ok = await watch.wait(0, part, _block_timeout(config, muxer))
    if not ok:
        raise web.HTTPServiceUnavailable(
            text="the stream has no complete segment yet",
            headers={**CORS, "Retry-After": FIRST_SEGMENT_RETRY_AFTER})


def _runtime(request: web.Request) -> LiveBroadcast:
    stream_id = request.match_info["stream_id"]
    if not ID_RE.fullmatch(stream_id):
        raise web.HTTPNotFound(headers=CORS)
    # A channel id plays whichever broadcast is live (old stream ids are channel ids too);
    # a broadcast id plays that broadcast while it is in memory.
    ls = request.app[STATE].service.runtime(stream_id)
    if ls is None:
        raise web.HTTPNotFound(headers=CORS)
    return ls


async def hls(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not HLS_NAME_RE.fullmatch(name):
        raise web.HTTPNotFound(headers=CORS)
    ls = _runtime(request)
    stream_id = request.match_info["stream_id"]
    private = _check_access(request, stream_id, ls)
    if name == MULTIVARIANT_NAME:
        resp = await _multivariant(request, ls)
    elif name == MEDIA_PLAYLIST_NAME:
        resp = await _media_playlist(request, ls, ls.muxer, None)
    elif name.endswith(".m3u8"):
        raise web.HTTPNotFound(headers=CORS)
    else:
        resp = await _media_object(request, ls, ls.muxer, name)
    if private and _check_access(request, stream_id, ls):  # again: a blocking reload waited
        mark_private(resp)
    return resp


async def hls_rendition(request: web.Request) -> web.StreamResponse:
    """``/hls/{id}/{rendition}/{name}``: a quality-ladder rendition (``480p/media.m3u8``,
    ``480p/part-N-I.m4s``, …). The rendition is looked up by name among the broadcast's
    served renditions (a preset name, ``^[0-9]{3,4}p$``); nothing touches the filesystem.
    Access is checked as for the source (docs/threat-model.md §grants)."""
    rendition = request.match_info["rendition"]
    name = request.match_info["name"]
    if not RENDITION_RE.fullmatch(rendition) or not HLS_NAME_RE.fullmatch(name):
        raise web.HTTPNotFound(headers=CORS)
    ls = _runtime(request)
    stream_id = request.match_info["stream_id"]
    private = _check_access(request, stream_id, ls)
    muxer = ls.rendition_muxer(rendition)
    if muxer is None:  # no such preset, not encoding yet, or shed by the CPU guard
        raise web.HTTPNotFound(headers=CORS)
    if name == MEDIA_PLAYLIST_NAME:
        resp = await _media_playlist(request, ls, muxer, rendition)
    elif name.endswith(".m3u8"):
        raise web.HTTPNotFound(headers=CORS)
    else:
        resp = await _media_object(request, ls, muxer, name)
    if private and _check_access(request, stream_id, ls):  # again: a blocking reload waited
        mark_private(resp)
    return resp


def _media_uri(rendition: str | None) -> str:
    """A rendition's media playlist relative to ``/hls/{id}/``."""
    return MEDIA_PLAYLIST_NAME if rendition is None else f"{rendition}/{MEDIA_PLAYLIST_NAME}"


def _check_access(request: web.Request, stream_id: str, ls: LiveBroadcast) -> bool:
    """403 unless the request may play this broadcast (docs/threat-model.md §grants); True
    when it is private. Through a channel id, a broadcast more restricted than its channel is
    not there at all (404)."""
    service = request.app[STATE].service
    if stream_id == ls.channel_id and not shown_via_channel(
            service.visibility(ls.broadcast_id), service.channel_visibility(ls.channel_id)):
        raise web.HTTPNotFound(headers=CORS)
    return check_broadcast(request, ls.broadcast_id)


async def _multivariant(request: web.Request, ls: LiveBroadcast) -> web.Response:
    """rfc8216bis §4.4.6: the source, then each served ladder rendition, tallest first. Every
    BANDWIDTH is measured, so the source is listed from its first part on and each rendition
    from its own."""
    await _await_first(request, ls.muxer, part=0)
    request.app[HLS_GATE].count("multivariant")
    variants = [v for rendition, muxer in ls.hls_renditions()
                if (v := muxer.variant(_media_uri(rendition))) is not None]
    if not variants:
        raise web.HTTPNotFound(text="stream has no media yet", headers=CORS)
    return web.Response(text=render_multivariant_playlist(variants), headers=PLAYLIST_HEADERS)


def _rendition_reports(ls: LiveBroadcast, current: str | None) -> bytes:
    """EXT-X-RENDITION-REPORT for every other served rendition (rfc8216bis §4.4.5.4), with
    URIs relative to ``current``'s playlist (``480p/media.m3u8`` from the source's,
    ``../media.m3u8`` and ``../360p/media.m3u8`` from a rendition's)."""
    renditions = ls.hls_renditions()
    if len(renditions) < 2:
        return b""
    prefix = "" if current is None else "../"
    reports = [r for rendition, muxer in renditions if rendition != current
               and (r := muxer.rendition_report(prefix + _media_uri(rendition))) is not None]
    return render_rendition_reports(reports).encode()


async def _media_playlist(request: web.Request, ls: LiveBroadcast, muxer: HlsMuxer,
                          rendition: str | None) -> web.Response:
    """The media playlist, blocking on _HLS_msn/_HLS_part (rfc8216bis §6.2.5.2) when asked.

    Delivery directives are honoured on the very first request: nothing redirects or rewrites
    the URL, so a cache sees the same URL for every viewer asking for the same part.
    """
    config = request.app[STATE].config.hls
    gate = request.app[HLS_GATE]
    msn = part = None
    skip = False
    if config.low_latency:
        msn, part, skip = parse_blocking(request.query, muxer)
    watch = gate.watch(muxer)
    if msn is not None:
        _note_blocking_reload(request, ls)
        key_part = -1 if part is None else part
        if not watch.satisfied(msn, key_part):
            with gate.slot(client_address(request), config):
                ok = await watch.wait(msn, key_part, _block_timeout(config, muxer))
            if not ok:
                raise web.HTTPServiceUnavailable(
                    text="the requested part did not appear in time", headers=CORS)
    else:
        # A request without delivery directives may come from a plain RFC 8216 client
        # (ffmpeg, VLC): a playlist of parts without a single EXTINF gives those "empty
        # playlist" errors, so they wait for the first complete segment (one GOP, only in a
        # broadcast's first seconds). LL clients asking with _HLS_msn get parts at once.
        await _await_first(request, muxer, part=-1)
    gate.count("playlist")
    body = watch.body(config.low_latency, skip)
    if body is None:
        raise web.HTTPNotFound(text="stream has no media yet", headers=CORS)
    if config.low_latency and not muxer.ended and ls.ladder_on:
        body += _rendition_reports(ls, rendition)
    headers = PLAYLIST_HEADERS if msn is None else _blocking_headers(muxer.target_duration)
    return web.Response(body=body, headers=headers)


async def _media_object(request: web.Request, ls: LiveBroadcast, muxer: HlsMuxer,
                        name: str) -> web.Response:
    """An init segment, segment or part; parts and segments count the viewer."""
    state = request.app[STATE]
    data = muxer.chunks(name)
    if data is None and state.config.hls.low_latency and (m := PART_NAME_RE.fullmatch(name)):
        data = await _await_hinted_part(request, muxer, int(m[1]), int(m[2]))
    if data is None:
        raise web.HTTPNotFound(headers=CORS)
    # a segment is its parts, sent one after another (never joined: appliance/api/payload.py)
    body: bytes | ChunksPayload = data[0] if len(data) == 1 else ChunksPayload(data)
    state.metrics_hls_bytes += sum(len(c) for c in data)
    kind = name.split("-", 1)[0]  # init / seg / part (names are allow-listed by the muxer)
    request.app[HLS_GATE].count(kind)
    if kind != "init" and not ls.ended:
        _count_viewer(request, ls, player_id=request.headers.get(PLAYER_HEADER))
    ext = name.rsplit(".", 1)[1]
    return web.Response(body=body, headers={
        **CORS, "Content-Type": CONTENT_TYPES[ext], "Cache-Control": MEDIA_CACHE_CONTROL})


async def viewing_beacon(request: web.Request) -> web.Response:
    """``POST /api/streams/{id}/viewing?player=ID``: the watch page says it is playing.

    Uncacheable by construction (POST), so viewers served from an edge cache still count.
    """
    state = request.app[STATE]
    stream_id = request.match_info["stream_id"]
    if not ID_RE.fullmatch(stream_id):
        raise web.HTTPNotFound(headers=CORS)
    player = request.query.get("player", "")
    if not PLAYER_ID_RE.fullmatch(player):
        raise _bad("player must be 16-64 characters of A-Z a-z 0-9 _ -")
    ls = state.service.runtime(stream_id)
    if ls is None or ls.ended:
        raise web.HTTPNotFound(headers=CORS)
    _check_access(request, stream_id, ls)
    _count_viewer(request, ls, player_id=player,
                  low_latency=request.query.get("mode") == "llhls")
    return web.Response(status=204, headers={**CORS, "Cache-Control": "no-store"})


async def _await_hinted_part(request: web.Request, muxer: HlsMuxer, msn: int,
                             part: int) -> tuple[bytes, ...] | None:
    """Hold a request for the part named by EXT-X-PRELOAD-HINT until it is published."""
    if muxer.ended or muxer.last_msn is None or muxer.last_part is None:
        return None
    nxt = (muxer.last_msn, muxer.last_part + 1)
    if (msn, part) not in (nxt, (muxer.last_msn + 1, 0)):
        return None  # only the next part may be awaited; anything else is simply missing
    state = request.app[STATE]
    gate = request.app[HLS_GATE]
    with gate.slot(client_address(request), state.config.hls):
        await gate.watch(muxer).wait(msn, part, _block_timeout(state.config.hls, muxer))
    return muxer.chunks(f"part-{msn}-{part}.m4s")


def hls_metrics(app: web.Application) -> list[str]:
    """Prometheus lines: HLS requests answered by kind (an edge cache shows up here as about
    one request per part per edge), and viewer sessions refused by the per-address cap."""
    gate = app[HLS_GATE]
    lines = ["# HELP hearth_hls_requests_total HLS requests answered, by object kind.",
             "# TYPE hearth_hls_requests_total counter"]
    for kind in sorted(gate.requests):
        lines.append(f'hearth_hls_requests_total{{kind="{kind}"}} {gate.requests[kind]}')
    return lines


def add_hls_routes(app: web.Application) -> None:
    app[HLS_GATE] = BlockingGate()
    app.router.add_get("/hls/{stream_id}/{name}", hls)
    app.router.add_get("/hls/{stream_id}/{rendition}/{name}", hls_rendition)
    app.router.add_post("/api/streams/{stream_id}/viewing", viewing_beacon)
    app.router.add_post("/api/broadcasts/{stream_id}/viewing", viewing_beacon)
