"""Server-rendered HTML pages. Every piece of user text goes through :func:`html.escape`.

Pages carry no inline script or style: the Content-Security-Policy forbids both, so even a
markup injection that slipped past escaping could not run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html import escape

from appliance.api.schema import AnalyticsSplit, BroadcastAnalytics, ChannelAnalytics
from appliance.domain import Broadcast, BroadcastStatus

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _layout(title: str, body: str, scripts: tuple[str, ...] = ()) -> str:
    tags = "".join(f'<script src="/static/{escape(s)}" defer></script>' for s in scripts)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><link rel=\"stylesheet\" href=\"/static/style.css\">"
        "<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">"
        f"{tags}</head><body><header><a class=\"brand\" href=\"/\">Hearth</a></header>"
        f"<main>{body}</main></body></html>\n"
    )


def _ago(ts: float | None) -> str:
    if ts is None:
        return ""
    minutes = int((time.time() - ts) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    return f"{minutes // 60} h {minutes % 60} min ago"


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else (
        f"{s // 60}:{s % 60:02d}")


def _when(ts: float) -> str:
    """A planned start: absolute UTC in a <time> element (machine-readable too)."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    text = time.strftime("%a %d %b, %H:%M UTC", time.gmtime(ts))
    return f'<time datetime="{iso}">{escape(text)}</time>'


@dataclass(frozen=True, slots=True)
class Card:
    """A broadcast as a page shows it: with its channel's title, live viewers and whether a
    thumbnail (same-origin ``/thumb/{id}.jpg``) and a recording exist."""

    broadcast: Broadcast
    channel_title: str = ""
    viewers: int = 0
    thumbnail: bool = False
    recording: bool = False
    length: float | None = None
    """Seconds of its recording, when known (shown instead of the broadcast's span, which
    includes the reconnect grace)."""


def _thumb(c: Card) -> str:
    b = c.broadcast
    if c.thumbnail:  # our own keyframe thumbnail (or the recording's poster)
        return (f'<img class="thumb" src="/thumb/{escape(b.id)}.jpg" alt="" '
                'loading="lazy">')
    # docs/threat-model.md §pages: only https images are referenced; anything else gets the CSS
    # placeholder.
    if b.image.startswith("https://"):
        return f'<img class="thumb" src="{escape(b.image)}" alt="" loading="lazy">'
    return '<span class="thumb placeholder" aria-hidden="true"></span>'


def _card(c: Card, host: str = "", now: float | None = None) -> str:
    b = c.broadcast
    now = time.time() if now is None else now
    if b.status is BroadcastStatus.LIVE:
        badge = '<span class="badge live">LIVE</span>'
        watching = f"{c.viewers} watching · " if c.viewers else ""
        meta = f"{watching}live for {_clock(now - (b.started_at or now))}"
    elif b.status is BroadcastStatus.PLANNED:
        badge = '<span class="badge upcoming">UPCOMING</span>'
        meta = f"starts {_when(b.starts)}" if b.starts else "not live yet"
    else:
        badge = '<span class="badge">ENDED</span>'
        length = f" · {_clock(c.length)}" if c.length else ""
        meta = f"ended {_ago(b.ended_at)}{length}" + (" · recording" if c.recording else "")
    channel = (f'<a class="channel" href="/c/{escape(b.channel_id)}">'
               f"{escape(c.channel_title)}</a>" if c.channel_title else "")
    host_html = f'<span class="host">{escape(host)}</span>' if host else ""
    return (
        f'<li class="card"><a href="/watch/{escape(b.id)}">{_thumb(c)}{badge}'
        f'<span class="title">{escape(b.title)}</span></a>{channel}{host_html}'
        f'<span class="meta">{meta}</span></li>'
    )


def _grid(cards: list[Card], host: str = "", cls: str = "") -> str:
    return (f'<ul class="streams {cls}">' + "".join(_card(c, host) for c in cards)
            + "</ul>")


def discovery_page(cards: list[Card], host: str = "") -> str:
    """The front page: live broadcasts (thumbnail, title, channel, viewers, duration), then
    upcoming planned ones (soonest first), then recent recordings (newest first).

    ``host`` is the operator's display name (or short npub), shown on each card.
    """
    live = [c for c in cards if c.broadcast.status is BroadcastStatus.LIVE]
    planned = sorted((c for c in cards if c.broadcast.status is BroadcastStatus.PLANNED),
                     key=lambda c: c.broadcast.starts or 0.0)[:12]
    recorded = sorted((c for c in cards if c.broadcast.status is BroadcastStatus.ENDED
                       and c.recording), key=lambda c: -(c.broadcast.ended_at or 0.0))[:12]
    parts = ["<h1>Live now</h1>"]
    if not live:
        parts.append('<p class="empty">Nobody is live right now.</p>')
    else:
        parts.append(_grid(live, host))
    if planned:
        parts.append(f'<h2>Upcoming</h2>{_grid(planned, host, "upcoming")}')
    if recorded:
        parts.append(f'<h2>Recent recordings</h2>{_grid(recorded, host, "ended")}')
    return _layout("Hearth", "".join(parts))


def channel_extra(next_planned: Card | None, past: list[Card]) -> str:
    """Below a channel's player: its next planned broadcast and its past broadcasts."""
    parts = []
    if next_planned is not None:
        b = next_planned.broadcast
        when = f" · starts {_when(b.starts)}" if b.starts else ""
        parts.append(f'<section class="next"><h2>Next</h2><p><a href="/watch/{escape(b.id)}">'
                     f"{escape(b.title)}</a>{when}</p></section>")
    if past:
        parts.append(f'<section class="past"><h2>Past broadcasts</h2>{_grid(past)}</section>')
    elif next_planned is None:
        parts.append('<p class="empty">No broadcasts yet.</p>')
    return "".join(parts)


def watch_page(stream: Broadcast, viewers: int, chat: dict[str, object] | None = None,
               play_id: str | None = None, *, recording: bool = False,
               extra: str = "") -> str:
    """Player page for one broadcast (hls.js, with native HLS as the fallback) and its chat.

    ``chat`` goes into ``data-config`` for chat.js: ``address`` (the NIP-53 ``a`` coordinate
    browser-signed messages must carry), ``relays`` and ``host``. Everything is attribute-escaped
    JSON; chat.js renders user text with ``textContent`` only.

    With ``play_id`` set to a channel id the page follows the channel (``/c/{channel}``, old
    ``/watch/{stream}`` links): it plays whichever broadcast is live and waits otherwise. For
    a broadcast, watch.js follows its status: waiting → live → ended, where it plays the
    recording (``recording``: one exists) instead of the last live seconds. ``extra`` is
    trusted, already-escaped HTML placed under the player (the channel page's lists).
    """
    play = play_id or stream.id  # a channel id plays whichever broadcast is live
    cfg: dict[str, object] = {"id": play, "hls": f"/hls/{play}/index.m3u8"}
    if play_id is not None and play_id != stream.id:
        cfg["follow"] = "channel"
        cfg["api"] = f"/api/channels/{play}"
    else:
        cfg["api"] = f"/api/broadcasts/{stream.id}"
        cfg["status"] = stream.status.value
        if recording:
            cfg["vod"] = f"/vod/{stream.id}/index.m3u8"
    if chat:
        cfg["chat"] = chat
    config = escape(json.dumps(cfg))
    tags = "".join(f'<span class="tag">#{escape(t)}</span> ' for t in stream.tags)
    badge = {
        BroadcastStatus.LIVE: '<span class="badge live">LIVE</span>',
        BroadcastStatus.PLANNED: '<span class="badge">NOT LIVE YET</span>',
        BroadcastStatus.ENDED: '<span class="badge">ENDED</span>',
    }[stream.status]
    player = (
        f'<div id="watch" data-config="{config}">'
        '<video id="player" controls autoplay muted playsinline></video>'
        f'<p id="player-status" class="status" role="status">Connecting…</p>'
        f'<h1>{badge} <span id="title">{escape(stream.title)}</span></h1>'
        f'<p class="meta"><span id="viewers">{viewers}</span> watching</p>'
        f'<p class="summary">{escape(stream.summary)}</p><p>{tags}</p>{extra}</div>'
    )
    panel = (
        '<aside id="chat" class="chat" aria-label="Live chat">'
        '<h2>Chat</h2><p id="chat-pinned" class="pinned" hidden></p>'
        '<ol id="chat-log" class="chat-log" aria-live="polite"></ol>'
        '<p id="chat-status" class="chat-status" role="status"></p>'
        '<form id="chat-form" class="chat-form" autocomplete="off">'
        '<input id="chat-input" name="content" maxlength="500" placeholder="Say something…" '
        'aria-label="Chat message" required>'
        '<button id="chat-send" type="submit">Send</button></form>'
        '<p id="chat-identity" class="chat-identity"></p></aside>'
    )
    body = f'<div class="watch-layout">{player}{panel}</div>'
    return _layout(stream.title, body,
                   ("vendor/hls.min.js", "watch.js", "vendor/nostr-tools.js", "chat.js"))


def private_page(*, password_channel: str | None = None, next_path: str = "/",
                 message: str = "") -> str:
    """What a viewer without a grant sees instead of a private broadcast or channel: no
    title, no description (docs/threat-model.md §grants). ``password_channel``: the channel
    has a password; the form posts it to ``/access/password/{channel}``. access.js exchanges a
    ``#grant=`` link fragment for the grant cookie and reloads."""
    form = ""
    if password_channel is not None:
        form = (
            f'<form id="password-form" class="password-form" method="post" '
            f'action="/access/password/{escape(password_channel)}">'
            f'<input type="hidden" name="next" value="{escape(next_path)}">'
            '<label for="password">Password</label> '
            '<input id="password" name="password" type="password" maxlength="1024" '
            'autocomplete="current-password" required> '
            '<button type="submit">Watch</button></form>')
    note = f'<p id="access-message" class="status" role="status">{escape(message)}</p>'
    body = ("<h1>This broadcast is private</h1>"
            "<p>Open the link you were given"
            + (", or enter the channel's password" if form else "") + ".</p>" + note + form)
    return _layout("Private broadcast", body, ("access.js",))


def golive_page(channel_id: str, *, enabled: bool) -> str:
    """"Go live from this browser": camera or screen published over WHIP by golive.js.

    The stream key is typed into the page and sent only as the WHIP bearer token: the input
    has no ``name`` (a form submitted without script carries nothing) and never enters a URL.
    """
    cfg = escape(json.dumps({"whip": f"/whip/{channel_id}", "watch": f"/c/{channel_id}"}))
    if not enabled:
        body = ("<h1>Go live</h1><p class=\"status\">Publishing from the "
                "browser needs WebRTC on this server: the operator sets "
                "<code>webrtc.enabled</code> (and keeps <code>webrtc.whip</code> on).</p>")
        return _layout("Go live", body)
    body = (
        f'<div id="golive" class="golive" data-config="{cfg}">'
        "<h1>Go live from this browser</h1>"
        '<video id="preview" autoplay muted playsinline></video>'
        '<form id="golive-form" autocomplete="off">'
        '<label>Stream key <input id="key" type="password" autocomplete="off" '
        'spellcheck="false" required></label>'
        '<fieldset><legend>Source</legend>'
        '<label><input type="radio" name="source" value="camera" checked> Camera and '
        "microphone</label> "
        '<label><input type="radio" name="source" value="screen"> Screen</label></fieldset>'
        '<button id="start" type="submit">Go live</button> '
        '<button id="stop" type="button" disabled>Stop</button></form>'
        '<p id="golive-status" class="status" role="status">Not live.</p>'
        f'<p><a href="/c/{escape(channel_id)}">Channel page</a> (what viewers see)</p></div>'
    )
    return _layout("Go live", body, ("golive.js",))


def not_found_page() -> str:
    return _layout("Not found", "<h1>Not found</h1><p><a href=\"/\">All streams</a></p>")


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02}:{rest % 60:02}" if h else f"{rest // 60}:{rest % 60:02}"


def _svg_timeline(points: list[int]) -> str:
    """Concurrent viewers per minute as an inline SVG line (numbers only: no user text)."""
    if not points:
        return '<p class="empty">No per-minute figures (none yet, or past retention).</p>'
    top = max(points) or 1
    width, height = 600, 120
    step = width / max(len(points) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - v / top * (height - 4) - 2:.1f}"
                      for i, v in enumerate(points))
    return (f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="concurrent viewers per minute, at most {top}" '
            f'preserveAspectRatio="none" width="100%" height="{height}">'
            f'<polyline points="{coords}" fill="none" stroke="currentColor" '
            'stroke-width="2" vector-effect="non-scaling-stroke"/></svg>')


def _split_table(split: list[AnalyticsSplit], attr: str, head: str) -> str:
    groups: dict[str, list[float]] = {}
    for s in split:
        value = getattr(s, attr).value
        acc = groups.setdefault(value, [0, 0, 0.0])
        acc[0] += s.sessions
        acc[1] += s.viewers
        acc[2] += s.watch_seconds
    rows = "".join(
        f"<tr><td>{escape(name)}{' (not counted)' if name == 'bot' else ''}</td>"
        f"<td>{int(a[0])}</td><td>{int(a[1])}</td><td>{_hms(a[2])}</td></tr>"
        for name, a in groups.items())
    return (f'<table class="analytics"><thead><tr><th>{escape(head)}</th><th>Sessions</th>'
            f"<th>Viewers</th><th>Watched</th></tr></thead><tbody>{rows}</tbody></table>")


def owner_analytics_page(c: ChannelAnalytics, latest: BroadcastAnalytics | None,
                         expires: float) -> str:
    """The channel owner's view (``/c/{channel}/analytics`` with an owner link): the last
    days rolled up, the latest broadcast's timeline and splits, each broadcast. Every title is
    escaped; the page carries no script (docs/analytics.md)."""
    parts = [f"<h1>Audience of {escape(c.title)}</h1>",
             f'<p class="meta">Last {c.days} days: {c.broadcasts} broadcasts, peak {c.peak}, '
             f"{c.unique_viewers} viewers, watched {_hms(c.watch_seconds)} "
             f"(average {_hms(c.average_watch_seconds)} per session), "
             f"{c.chat_messages} chat messages. This link expires {_when(expires)}.</p>"]
    if latest is not None:
        b = latest
        parts.append(
            f"<section><h2>{escape(b.title)}</h2>"
            f'<p class="meta">Peak {b.peak} at {_when(b.peak_at) if b.peak_at else "—"} · '
            f"{b.unique_viewers} unique viewers · watched {_hms(b.watch_seconds)} in "
            f"{b.sessions} sessions · chat {b.chat_messages} messages from {b.chatters} "
            f"people · replays {b.vod_sessions}</p>"
            f"{_svg_timeline([m.viewers for m in b.timeline])}"
            f'{_split_table(b.split, "kind", "Player")}'
            f'{_split_table(b.split, "device", "Device")}</section>')
    rows = "".join(
        f"<tr><td>{escape(x.title)}</td><td>{_when(x.started_at) if x.started_at else '—'}"
        f"</td><td>{x.peak}</td><td>{x.unique_viewers}</td><td>{_hms(x.watch_seconds)}</td>"
        f"<td>{x.chat_messages}</td></tr>" for x in c.per_broadcast)
    parts.append(
        '<section><h2>Broadcasts</h2><table class="analytics"><thead><tr><th>Title</th>'
        "<th>Started</th><th>Peak</th><th>Viewers</th><th>Watched</th><th>Chat</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>")
    return _layout(f"Audience of {c.title}", "".join(parts))
