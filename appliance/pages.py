"""Server-rendered HTML pages. Every piece of user text goes through :func:`html.escape`.

Pages carry no inline script or style: the Content-Security-Policy forbids both, so even a
markup injection that slipped past escaping could not run.
"""

from __future__ import annotations

import json
import time
from html import escape

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


def _thumb(s: Broadcast) -> str:
    # docs/threat-model.md §pages: only https images are referenced; anything else gets the CSS
    # placeholder.
    if s.image.startswith("https://"):
        return f'<img class="thumb" src="{escape(s.image)}" alt="" loading="lazy">'
    return '<span class="thumb placeholder" aria-hidden="true"></span>'


def _card(s: Broadcast, viewers: int, host: str) -> str:
    live = s.status is BroadcastStatus.LIVE
    badge = '<span class="badge live">LIVE</span>' if live else '<span class="badge">ENDED</span>'
    meta = (f"{viewers} watching · started {_ago(s.started_at)}" if live
            else f"ended {_ago(s.ended_at)}")
    host_html = f'<span class="host">{escape(host)}</span>' if host else ""
    return (
        f'<li class="card"><a href="/watch/{escape(s.id)}">{_thumb(s)}{badge}'
        f'<span class="title">{escape(s.title)}</span></a>{host_html}'
        f'<span class="meta">{meta}</span></li>'
    )


def discovery_page(streams: list[tuple[Broadcast, int]], host: str = "") -> str:
    """The front page: live streams first (with viewers), then recently ended ones.

    ``host`` is the operator's display name (or short npub), shown on each card.
    """
    live = [(s, v) for s, v in streams if s.status is BroadcastStatus.LIVE]
    ended = [(s, v) for s, v in streams if s.status is BroadcastStatus.ENDED][:12]
    parts = ["<h1>Live now</h1>"]
    if not live:
        parts.append('<p class="empty">Nobody is live right now.</p>')
    else:
        parts.append('<ul class="streams">')
        parts.extend(_card(s, v, host) for s, v in live)
        parts.append("</ul>")
    if ended:
        parts.append('<h2>Recently ended</h2><ul class="streams ended">')
        parts.extend(_card(s, v, host) for s, v in ended)
        parts.append("</ul>")
    return _layout("Hearth", "".join(parts))


def watch_page(stream: Broadcast, viewers: int, chat: dict[str, object] | None = None,
               play_id: str | None = None) -> str:
    """Player page for one stream (hls.js, with native HLS as the fallback) and its chat.

    ``chat`` goes into ``data-config`` for chat.js: ``address`` (the NIP-53 ``a`` coordinate
    browser-signed messages must carry), ``relays`` and ``host``. Everything is attribute-escaped
    JSON; chat.js renders user text with ``textContent`` only.
    """
    play = play_id or stream.id  # a channel id plays whichever broadcast is live
    cfg: dict[str, object] = {"id": play, "hls": f"/hls/{play}/index.m3u8"}
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
        f'<p class="summary">{escape(stream.summary)}</p><p>{tags}</p></div>'
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


def not_found_page() -> str:
    return _layout("Not found", "<h1>Not found</h1><p><a href=\"/\">All streams</a></p>")
