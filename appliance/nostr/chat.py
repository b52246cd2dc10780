"""Pure chat rules: which inbound events are ours, display sanitising, flood control.

No I/O here; :mod:`appliance.nostr.service` applies these to events from relays and from
browsers. Limits: docs/threat-model.md §chat.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from relay_client import NostrEvent
from relay_client.live import (
    CHAT_KIND,
    MAX_REACTION_CHARS,
    REACTION_KIND,
    ZAP_RECEIPT_KIND,
    parse_zap_amount_msats,
)

MAX_FUTURE_SECONDS = 15 * 60
"""Chat dated further ahead than this is refused (docs/threat-model.md §chat: +15 min)."""
MAX_AGE_SECONDS = 7 * 24 * 3600
"""Chat older than this is refused (docs/threat-model.md §chat: −7 days)."""
MAX_CONTENT_BYTES = 64 * 1024
"""Stored content limit (NIP-01 events are ≤ 64 KiB here anyway)."""
DISPLAY_CHARS = 500
"""Characters shown per message; the stored event keeps its full content."""
WS_FRAME_BYTES = 8 * 1024
"""Largest WebSocket frame a browser may send (docs/threat-model.md §chat)."""
MAX_JSON_DEPTH = 16
"""Deepest array/object nesting accepted in a browser frame. A signed chat event frame is 4
levels deep (frame → event → tags → tag); 3,000 nested arrays fit in 8 KiB and would make
``json.loads`` recurse until ``RecursionError``."""

# JSON strings (with escapes) are skipped when measuring nesting: brackets inside them count
# for nothing.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?')
_BRACKETS = re.compile(r"[\[\]{}]")


def json_nesting_exceeds(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True if ``text`` nests arrays/objects deeper than ``max_depth`` (checked before parsing;
    linear time, no recursion). Malformed input is left to the JSON parser to reject."""
    depth = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth = max(0, depth - 1)
    return False

# Bidi embedding/override/isolate controls and other invisible format characters that can
# reorder or hide surrounding text (Trojan Source; docs/threat-model.md §chat). C0/C1 controls
# except \n and \t.
_STRIP = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff"
    "\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def display_text(content: str, limit: int = DISPLAY_CHARS) -> str:
    """Content as shown: bidi/zero-width/control characters removed, trimmed to ``limit``."""
    text = _STRIP.sub("", _LONE_SURROGATE.sub("\ufffd", content))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def display_name(name: str) -> str:
    return display_text(name, 64).strip()


def chat_reject_reason(event: NostrEvent, address: str, now: float | None = None, *,
                       require_address: bool = True) -> str | None:
    """Why ``event`` may not enter the chat of the activity at ``address``, or ``None``.

    Chat (1311), zap receipts (9735) and reactions (7). Cheap checks only; the id and
    signature are verified separately (docs/threat-model.md §chat: cheap checks, then id
    recompute, then Schnorr). ``require_address=False`` is for zap receipts that tag the
    stream's goal instead of the activity.
    """
    now = time.time() if now is None else now
    if event.kind not in (CHAT_KIND, ZAP_RECEIPT_KIND, REACTION_KIND):
        return "wrong-kind"
    # NIP-53: a 1311 MUST carry ["a", "30311:<pubkey>:<d>"]; receipts carry it when the zap
    # request targeted the activity (NIP-57); our reactions always carry it.
    if require_address and address not in event.tag_values("a"):
        return "other-activity"
    if event.created_at > now + MAX_FUTURE_SECONDS:
        return "created-at-future"
    if event.created_at < now - MAX_AGE_SECONDS:
        return "created-at-too-old"
    if len(event.content.encode("utf-8", "surrogatepass")) > MAX_CONTENT_BYTES:
        return "too-large"
    if event.kind == CHAT_KIND and not event.content.strip():
        return "empty"
    if event.kind == REACTION_KIND and not 0 < len(event.content) <= MAX_REACTION_CHARS:
        return "bad-reaction"
    return None


def zap_amount(event: NostrEvent) -> int | None:
    return parse_zap_amount_msats(event) if event.kind == ZAP_RECEIPT_KIND else None


def reply_target(event: NostrEvent) -> str | None:
    """NIP-53: the ``e`` tag names the direct parent."""
    for value in event.tag_values("e"):
        if len(value) == 64:
            return value
    return None


@dataclass
class _Bucket:
    tokens: float
    updated: float
    blocked_until: float = 0.0


class RateLimiter:
    """Token buckets by key: ``capacity`` messages, refilled over ``period`` seconds; a key that
    runs dry is refused for ``timeout`` seconds (docs/threat-model.md §chat: 2 / 3 s + 10 s
    timeout)."""

    def __init__(self, capacity: float = 2, period: float = 3.0, timeout: float = 10.0,
                 max_keys: int = 100_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.capacity = capacity
        self.period = period
        self.rate = capacity / period
        self.timeout = timeout
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``; returns 0 when allowed, else seconds to wait."""
        now = self.clock() if now is None else now
        b = self._buckets.get(key)
        if b is None:
            b = _Bucket(self.capacity, now)
            self._buckets[key] = b
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if now < b.blocked_until:
            return b.blocked_until - now
        b.tokens = min(self.capacity, b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        b.blocked_until = now + self.timeout
        return self.timeout

    def describe(self) -> str:
        """The limit in words, for error messages (so the text always matches the numbers)."""
        return (f"at most {self.capacity:g} messages every {self.period:g} s, then a "
                f"{self.timeout:g} s pause")


class DuplicateGuard:
    """Refuses the same text from the same author again within ``window`` seconds
    (docs/threat-model.md §chat)."""

    def __init__(self, window: float = 10.0, max_entries: int = 10_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def is_duplicate(self, pubkey: str, content: str, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        key = (pubkey, " ".join(content.split()).casefold())
        last = self._seen.get(key)
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return last is not None and now - last < self.window
