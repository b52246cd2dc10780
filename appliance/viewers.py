"""Viewer counting from the HLS serving path, by player session token (no IPs kept).

A player's first playlist request has no token; it is redirected to the same playlist with
``?s=<token>``. Players resolve segment URIs against the redirected URL and reload that URL, so
each reload identifies the session. A session counts as watching while it has fetched a
playlist within :data:`ACTIVE_SECONDS`. Tokens are minted with an HMAC so clients cannot fill
memory with made-up tokens; the number tracked per stream is capped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

ACTIVE_SECONDS = 15.0
"""Seconds since its last playlist request during which a session still counts."""
MAX_SESSIONS = 20_000
"""Sessions tracked per stream; beyond this the oldest are forgotten."""


class ViewerTokens:
    """Mints and checks player session tokens (stateless)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, stream_id: str, nonce: str) -> str:
        mac = hmac.new(self._secret, f"{stream_id}:{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:9]).decode()

    def mint(self, stream_id: str) -> str:
        nonce = secrets.token_urlsafe(9)
        return f"{nonce}.{self._mac(stream_id, nonce)}"

    def check(self, stream_id: str, token: str) -> bool:
        if len(token) > 64 or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        return hmac.compare_digest(mac, self._mac(stream_id, nonce))


class ViewerCounter:
    """Concurrent, peak and total viewer sessions of one stream."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}
        self.total = 0
        self.peak = 0

    def touch(self, token: str) -> None:
        now = self._clock()
        if token in self._seen:
            del self._seen[token]  # re-insert: dict order = recency order
        else:
            self.total += 1
            if len(self._seen) >= MAX_SESSIONS:
                del self._seen[next(iter(self._seen))]
        self._seen[token] = now
        self.peak = max(self.peak, self.current())

    def current(self) -> int:
        cutoff = self._clock() - ACTIVE_SECONDS
        # Oldest first: drop expired sessions from the front.
        while self._seen:
            token, seen = next(iter(self._seen.items()))
            if seen >= cutoff:
                break
            del self._seen[token]
        return len(self._seen)
