"""Domain values: streams, their states, stream keys.

Stream keys are ≥ 128 random bits (``secrets.token_urlsafe(24)`` → 192 bits), shown once and
stored only as a SHA-256 digest. A fast hash is enough for a high-entropy random secret
(docs/threat-model.md §stream-keys); comparison is ``hmac.compare_digest`` on fixed-length digests,
hash first.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

STREAM_ID_RE = re.compile(r"^[a-z0-9]{6,32}$")
KEY_PREFIX = "hk_"
# RTMP stream names that could be keys: token_urlsafe alphabet, bounded (nginx caps names at
# 256 bytes). Anything else is refused before any lookup (docs/threat-model.md §stream-keys).
STREAM_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_TAGS = 10
MAX_TAG = 40
MAX_URL = 1000


class StreamState(enum.Enum):
    """Lifecycle of a stream: created → live → ended (ended is final)."""

    CREATED = "created"
    LIVE = "live"
    ENDED = "ended"


class ValidationError(ValueError):
    """User-supplied stream fields are invalid; ``field`` names the offending one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def new_stream_id() -> str:
    return secrets.token_hex(6)


def new_stream_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time check of a presented key against a stored digest."""
    return hmac.compare_digest(hash_key(key), stored_hash)


def redact_key(key: str) -> str:
    """A loggable stand-in for a stream key (never log keys themselves)."""
    return f"{key[:5]}…({len(key)} chars)" if len(key) > 8 else "…"


@dataclass(frozen=True, slots=True)
class StreamFields:
    """The operator-editable description of a stream."""

    title: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    image: str = ""

    def validated(self) -> StreamFields:
        """Normalized copy; raises :class:`ValidationError` for bad input."""
        title = " ".join(self.title.split())
        if not title:
            raise ValidationError("title", "must not be empty")
        if len(title) > MAX_TITLE:
            raise ValidationError("title", f"at most {MAX_TITLE} characters")
        summary = self.summary.strip()
        if len(summary) > MAX_SUMMARY:
            raise ValidationError("summary", f"at most {MAX_SUMMARY} characters")
        tags = _normalized_tags(self.tags)
        image = self.image.strip()
        if image:
            parts = urlsplit(image)
            if parts.scheme not in ("https", "http") or not parts.netloc or len(image) > MAX_URL:
                raise ValidationError("image", "must be an http(s) URL")
        for name, value in (("title", title), ("summary", summary)):
            if any(ord(c) < 32 and c not in "\n\t" for c in value):
                raise ValidationError(name, "contains control characters")
        return StreamFields(title=title, summary=summary, tags=tags, image=image)


def _normalized_tags(raw_tags: tuple[str, ...]) -> tuple[str, ...]:
    """Lowercase one-word tags without a leading ``#``, deduplicated in order."""
    tags: list[str] = []
    for raw in raw_tags:
        tag = raw.strip().lstrip("#").lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG or any(c.isspace() for c in tag):
            raise ValidationError("tags", f"{raw!r}: one word of at most {MAX_TAG} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationError("tags", f"at most {MAX_TAGS} tags")
    return tuple(tags)


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream as stored."""

    id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    image: str
    status: StreamState
    created_at: float
    started_at: float | None
    ended_at: float | None
    peak_viewers: int
    total_viewers: int
