"""Viewer counting from the media-serving path, without rewriting playlist URLs.

A *viewer session* is counted when a player fetches media (a part or a segment, never just a
playlist or an init segment), or when the watch page's beacon says it is playing. Sessions are
identified server-side, so every player's URLs stay identical and cacheable (rfc8216bis
§6.2.5: a blocking playlist response for one ``(_HLS_msn, _HLS_part)`` is the same bytes for
every viewer, which is what LL-HLS caches collapse):

* the watch page sends a random player id (``X-Hearth-Player`` on media requests, ``player``
  on its beacon), so two tabs behind one NAT are two viewers;
* any other player is keyed by an HMAC of its address and User-Agent.

Honesty (issue 10 item 9, docs/threat-model.md §viewer-counts): keys are HMACs under a
per-process secret, kept only in memory, never raw addresses; one address holds at most
``per_address`` live sessions, so a flood of made-up ids or User-Agents from one address adds at
most that many viewers. Behind a cache, media hits never reach the origin: the watch page's
beacon (uncacheable POST) keeps those viewers counted, other players are counted when their
requests reach the origin (never more than once each).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

ACTIVE_SECONDS = 15.0
"""Seconds since its last media request or beacon during which a session still counts."""
MAX_SESSIONS = 20_000
"""Sessions tracked per stream; beyond this the oldest are forgotten."""
SESSIONS_PER_ADDRESS = 8
"""Default cap on live sessions from one client address (a household or a small venue)."""
PLAYER_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""Shape of a watch-page player id (random, generated in the browser)."""
MAX_USER_AGENT = 256


class ViewerTokens:
    """Derives opaque session and address keys (HMAC-SHA256 under a per-process secret)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, *parts: str) -> str:
        mac = hmac.new(self._secret, "\0".join(parts).encode(errors="replace"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:12]).decode()

    def address_key(self, address: str) -> str:
        """An opaque, per-process key for a client address (the address is not kept)."""
        return self._mac("addr", address)

    def session_key(self, address: str, user_agent: str, player_id: str | None) -> str:
        """The session a request belongs to.

        A well-formed ``player_id`` (watch page) wins; otherwise address + User-Agent.
        Malformed ids are ignored rather than refused: the media is still served.
        """
        if player_id is not None and PLAYER_ID_RE.fullmatch(player_id):
            return "p:" + self._mac("player", player_id)
        return "a:" + self._mac("ua", address, user_agent[:MAX_USER_AGENT])


class ViewerCounter:
    """Concurrent, peak and total viewer sessions of one stream (or broadcast).

    Args:
        clock: monotonic seconds (injected in tests).
        per_address: live sessions one address key may hold; further new sessions from it are
            not counted (and counted in :attr:`refused`) until one of its sessions expires.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 per_address: int = SESSIONS_PER_ADDRESS) -> None:
        self._clock = clock
        self._per_address = per_address
        self._seen: dict[str, tuple[float, str | None]] = {}  # session → (last seen, address)
        self._by_address: dict[str, set[str]] = {}
        self.total = 0
        self.peak = 0
        self.refused = 0

    def seen(self, session: str, address: str | None = None) -> bool:
        """Record activity of ``session`` from ``address``; False if the address cap refused it."""
        now = self._clock()
        known = self._seen.pop(session, None)
        if known is None:
            self._expire(now)
            if address is not None:
                live = self._by_address.get(address)
                if live is not None and len(live) >= self._per_address:
                    self.refused += 1
                    return False
            self.total += 1
            if len(self._seen) >= MAX_SESSIONS:
                self._forget(next(iter(self._seen)))
            if address is not None:
                self._by_address.setdefault(address, set()).add(session)
        else:
            address = known[1]
        self._seen[session] = (now, address)  # re-insert: dict order = recency order
        self.peak = max(self.peak, len(self._seen))
        return True

    def touch(self, session: str) -> None:
        """Record activity of a session that has no address cap (e.g. a WHEP peer)."""
        self.seen(session)

    def current(self) -> int:
        """Sessions active within :data:`ACTIVE_SECONDS`."""
        self._expire(self._clock())
        return len(self._seen)

    def _expire(self, now: float) -> None:
        cutoff = now - ACTIVE_SECONDS
        # Oldest first: drop expired sessions from the front.
        while self._seen:
            session, (seen, _) = next(iter(self._seen.items()))
            if seen >= cutoff:
                break
            self._forget(session)

    def _forget(self, session: str) -> None:
        _, address = self._seen.pop(session)
        if address is not None:
            live = self._by_address.get(address)
            if live is not None:
                live.discard(session)
                if not live:
                    del self._by_address[address]
