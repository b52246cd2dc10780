"""Domain values: channels, broadcasts, their states, stream keys.

A *channel* is what an operator sets up once (title, key, recording policy); a *broadcast* is
one live session of a channel (or a planned one), with its own NIP-53 address. See
:mod:`appliance.channels` for who owns them.

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

from media.ladder import LadderError, parse_ladder

ID_RE = re.compile(r"^[a-z0-9]{6,32}$")
"""Channel and broadcast ids (one namespace: a migrated stream's id is both)."""
KEY_PREFIX = "hk_"
# RTMP stream names that could be keys: token_urlsafe alphabet, bounded (nginx caps names at
# 256 bytes). Anything else is refused before any lookup (docs/threat-model.md §stream-keys).
STREAM_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_TAGS = 10
MAX_TAG = 40
MAX_URL = 1000


class BroadcastStatus(enum.Enum):
    """Lifecycle of a broadcast: planned → live → ended (ended is final).

    The values are NIP-53's ``status`` tag values, so a broadcast's status is its 30311 status.
    """

    PLANNED = "planned"
    LIVE = "live"
    ENDED = "ended"


class Visibility(enum.Enum):
    """Who may find and watch a channel's or broadcast's media (docs/threat-model.md §grants).

    * ``public``: listed on ``/`` and the public API lists, announced on Nostr (NIP-53).
    * ``unlisted``: anyone with the link may watch; never listed, never sent to relays.
    * ``private``: like unlisted, and every page, playlist, media object, recording,
      thumbnail, WHEP offer and chat connection needs a grant (a signed link or the channel
      password).
    """

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"

    @classmethod
    def parse(cls, raw: object, field: str = "visibility") -> Visibility:
        """The visibility named by ``raw``; raises :class:`ValidationError`."""
        try:
            return cls(raw)
        except ValueError:
            raise ValidationError(field, "must be public, unlisted or private") from None


class ValidationError(ValueError):
    """User-supplied channel or broadcast fields are invalid; ``field`` names the offending one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


MAX_RETENTION_DAYS = 3650


def new_id() -> str:
    """A channel or broadcast id: 48 random bits, lowercase hex."""
    return secrets.token_hex(6)


def new_stream_key(channel_id: str) -> str:
    """``hk_<channel id>_<secret>``: the id part routes the lookup, the secret authenticates.

    The id is the channel's, so a key outlives every broadcast (and a migrated stream's key,
    whose id part was the stream id, names the channel that stream became).
    """
    return f"{KEY_PREFIX}{channel_id}_{secrets.token_urlsafe(24)}"


def split_key(key: str) -> str | None:
    """The channel id named by ``hk_<channel id>_<secret>``; None if it cannot be one of ours."""
    if not key.startswith(KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not ID_RE.fullmatch(parts[1]) or not parts[2]:
        return None
    return parts[1]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time check of a presented key against a stored digest."""
    return hmac.compare_digest(hash_key(key), stored_hash)


@dataclass(frozen=True, slots=True)
class ChannelFields:
    """The operator-editable description of a channel."""

    title: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    image: str = ""
    record: bool = True
    retention_days: int | None = None
    """Recordings older than this are deleted (None: kept until the global disk cap)."""
    visibility: Visibility = Visibility.PUBLIC
    """Its live and planned broadcasts follow it (an ended one keeps what it had)."""
    ladder: tuple[str, ...] = ()
    """Quality-ladder presets (media/ladder.py), tallest first; () = remux only."""

    def validated(self) -> ChannelFields:
        """Normalized copy; raises :class:`ValidationError` for bad input."""
        title = validated_title(self.title)
        summary = self.summary.strip()
        if len(summary) > MAX_SUMMARY:
            raise ValidationError("summary", f"at most {MAX_SUMMARY} characters")
        tags = _normalized_tags(self.tags)
        image = self.image.strip()
        if image:
            parts = urlsplit(image)
            if parts.scheme not in ("https", "http") or not parts.netloc or len(image) > MAX_URL:
                raise ValidationError("image", "must be an http(s) URL")
        if any(ord(c) < 32 and c not in "\n\t" for c in summary):
            raise ValidationError("summary", "contains control characters")
        return ChannelFields(title=title, summary=summary, tags=tags, image=image,
                             record=bool(self.record),
                             retention_days=_retention(self.retention_days),
                             visibility=Visibility.parse(self.visibility),
                             ladder=_ladder(self.ladder))


def _ladder(names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return parse_ladder(names)
    except LadderError as exc:
        raise ValidationError("ladder", str(exc).removeprefix("ladder: ")) from None


def _retention(days: int | None) -> int | None:
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 1 <= days <= MAX_RETENTION_DAYS):
        raise ValidationError("retention_days",
                              f"a whole number of days from 1 to {MAX_RETENTION_DAYS}")
    return days


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


def validated_title(raw: str) -> str:
    """A title with whitespace runs collapsed; raises :class:`ValidationError` if unusable."""
    title = " ".join(raw.split())
    if not title:
        raise ValidationError("title", "must not be empty")
    if len(title) > MAX_TITLE:
        raise ValidationError("title", f"at most {MAX_TITLE} characters")
    if any(ord(c) < 32 for c in title):
        raise ValidationError("title", "contains control characters")
    return title


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel as stored. Its key is never here: only its digest, in the database."""

    id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    image: str
    record: bool
    retention_days: int | None
    created_at: float
    visibility: Visibility = Visibility.PUBLIC
    has_password: bool = False
    ladder: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A broadcast as stored, with its channel's description resolved.

    ``title`` is the broadcast's own when it has one (a planned broadcast's), else the
    channel's; ``summary``, ``tags`` and ``image`` are the channel's. ``starts`` is the
    planned start (None for unplanned ones); ``health`` is the last ingest-health snapshot
    written while live (a JSON object, or None before the first one).
    """

    id: str
    channel_id: str
    title: str
    summary: str
    tags: tuple[str, ...]
    image: str
    status: BroadcastStatus
    created_at: float
    starts: float | None
    started_at: float | None
    ended_at: float | None
    peak_viewers: int
    total_viewers: int
    end_reason: str | None = None
    reconnects: int = 0
    health: dict[str, object] | None = None
    visibility: Visibility = Visibility.PUBLIC
    """Effective: its own (set for it, or frozen when it ended), else its channel's."""
    own_visibility: Visibility | None = None
    """Set for this broadcast (None: it follows its channel while planned or live)."""
