"""NIP-01 events: canonical serialization, id, strict schema validation, verify, sign.

Serialization (NIP-01 "Events and signatures"): the id is ``sha256`` of the UTF-8 JSON of
``[0, pubkey, created_at, kind, tags, content]`` with no whitespace; ``\\n \\" \\\\ \\r \\t
\\b \\f`` are escaped as shown and every other character is written verbatim. JSON itself
cannot carry the remaining C0 controls raw, so they come out as lowercase ``\\u00XX`` — the
same bytes as ``JSON.stringify`` (nostr-tools) and ``json.dumps(ensure_ascii=False)``.
Lone surrogates have no UTF-8 form, hence no id: such events are rejected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from relay_client.jsonbound import JsonBoundError, decode_bounded
from relay_client.schnorr import verify_signature

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_CREATED_AT",
    "MAX_EVENT_BYTES",
    "MAX_TAGS",
    "EventError",
    "EventIdMismatch",
    "InvalidSignature",
    "NostrEvent",
    "Tags",
    "UnsignedEvent",
    "compute_id",
    "serialize_for_id",
]

Tags = tuple[tuple[str, ...], ...]

#: docs/threat-model.md §nostr-events: an event's JSON is at most 64 KiB; larger ones are dropped
#: unparsed.
MAX_EVENT_BYTES = 64 * 1024
#: docs/threat-model.md §nostr-events: at most 2,000 tags (10k-tag events are a known DoS).
MAX_TAGS = 2000
#: Largest ``created_at`` that JavaScript clients can represent exactly (2**53 - 1);
#: beyond it ids computed by nostr-tools would differ from ours.
MAX_CREATED_AT = 2**53 - 1

_HEX = frozenset("0123456789abcdef")
_FIELDS = ("id", "pubkey", "created_at", "kind", "tags", "content", "sig")


class EventError(ValueError):
    """An event is malformed, oversized or fails id/signature checks."""


class EventIdMismatch(EventError):
    """The event's ``id`` is not the sha256 of its canonical serialization (NIP-01)."""


class InvalidSignature(EventError):
    """The event's BIP-340 ``sig`` does not verify against its ``pubkey`` and ``id``."""


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return type(value).__name__


def _check_hex(name: str, value: object, length: int) -> str:
    if not isinstance(value, str):
        raise EventError(f"{name} must be a string, got {_type_name(value)}")
    if len(value) != length:
        raise EventError(f"{name} must be {length} lowercase hex characters, got {len(value)}")
    if not _HEX.issuperset(value):
        if _HEX.issuperset(value.lower()):
            raise EventError(f"{name} must be lowercase hex, got uppercase")
        raise EventError(f"{name} must be {length} lowercase hex characters, got {_preview(value)}")
    return value


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    # bool is an int subclass in Python; JSON true is not a number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventError(f"{name} must be an integer, got {_type_name(value)}")
    if not lo <= value <= hi:
        raise EventError(f"{name} must be in {lo}..{hi}, got {value}")
    return value


def _check_tags(value: object) -> Tags:
    if not isinstance(value, list | tuple):
        raise EventError(f"tags must be a list, got {_type_name(value)}")
    if len(value) > MAX_TAGS:
        raise EventError(f"event has {len(value)} tags, limit is {MAX_TAGS}")
    out: list[tuple[str, ...]] = []
    for i, tag in enumerate(value):
        if not isinstance(tag, list | tuple):
            raise EventError(f"tags[{i}] must be a list, got {_type_name(tag)}")
        # NIP-01 "Tags": each tag is an array of one or more strings.
        if not tag:
            raise EventError(f"tags[{i}] must not be empty")
        for j, item in enumerate(tag):
            if not isinstance(item, str):
                raise EventError(f"tags[{i}][{j}] must be a string, got {_type_name(item)}")
        out.append(tuple(tag))
    return tuple(out)


def _tags_as_lists(tags: Tags) -> list[list[str]]:
    return [list(t) for t in tags]


def serialize_for_id(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> bytes:
    """The NIP-01 canonical serialization whose sha256 is the event id.

    Raises:
        EventError: a string holds a lone surrogate (no UTF-8 encoding exists).
    """
    text = json.dumps(
        [0, pubkey, created_at, kind, _tags_as_lists(tags), content],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventError("event contains a lone surrogate (not encodable as UTF-8)") from exc


def compute_id(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> str:
    """Lowercase hex sha256 of :func:`serialize_for_id`."""
    return hashlib.sha256(serialize_for_id(pubkey, created_at, kind, tags, content)).hexdigest()


def _normalize_tags(tags: Iterable[Sequence[str]]) -> Tags:
    return _check_tags([list(t) for t in tags])


@dataclass(frozen=True, slots=True)
class UnsignedEvent:
    """An event before it has a ``pubkey``, ``id`` and ``sig``."""

    kind: int
    content: str
    tags: Tags
    created_at: int

    def __post_init__(self) -> None:
        _check_int("kind", self.kind, 0, 65535)
        _check_int("created_at", self.created_at, 0, MAX_CREATED_AT)
        if not isinstance(self.content, str):
            raise EventError(f"content must be a string, got {_type_name(self.content)}")
        object.__setattr__(self, "tags", _normalize_tags(self.tags))

    def compute_id(self, pubkey: str) -> str:
        return compute_id(pubkey, self.created_at, self.kind, self.tags, self.content)

    def finalize(self, pubkey: str, sign_digest: Callable[[bytes], bytes]) -> NostrEvent:
        """Complete the event with ``pubkey``, its id and ``sign_digest(id_bytes)``.

        The building block of :class:`~relay_client.signing.Signer` implementations; code
        that wants a signed event calls ``signer.sign_event(unsigned)`` (the one way to sign).
        """
        _check_hex("pubkey", pubkey, 64)
        event_id = self.compute_id(pubkey)
        sig = sign_digest(bytes.fromhex(event_id)).hex()
        return NostrEvent(
            id=event_id,
            pubkey=pubkey,
            created_at=self.created_at,
            kind=self.kind,
            tags=self.tags,
            content=self.content,
            sig=sig,
        )


@dataclass(frozen=True, slots=True)
class NostrEvent:
    """A complete NIP-01 event. Construction validates the schema, not the signature.

    Use :meth:`verify` (id recompute, then BIP-340) before trusting one from a relay.
    """

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: Tags
    content: str
    sig: str

    def __post_init__(self) -> None:
        _check_hex("id", self.id, 64)
        _check_hex("pubkey", self.pubkey, 64)
        _check_int("created_at", self.created_at, 0, MAX_CREATED_AT)
        _check_int("kind", self.kind, 0, 65535)
        object.__setattr__(self, "tags", _check_tags(self.tags))
        if not isinstance(self.content, str):
            raise EventError(f"content must be a string, got {_type_name(self.content)}")
        _check_hex("sig", self.sig, 128)

    # -- wire form -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, obj: object) -> NostrEvent:
        """Validate a decoded JSON object and build the event (no signature check).

        Raises:
            EventError: wrong shape/types, bad hex, too many tags, oversized.
        """
        if not isinstance(obj, Mapping):
            raise EventError(f"event must be a JSON object, got {_json_type(obj)}")
        for name in _FIELDS:
            if name not in obj:
                raise EventError(f"event is missing field {name!r}")
        if not isinstance(obj["content"], str):
            raise EventError(f"content must be a string, got {_type_name(obj['content'])}")
        # Cheap size bound before any copying: content dominates real events.
        if len(obj["content"]) > MAX_EVENT_BYTES:
            raise EventError(
                f"event is larger than {MAX_EVENT_BYTES} bytes "
                f"(content alone is {len(obj['content'])} characters)"
            )
        event = cls(
            id=obj["id"],
            pubkey=obj["pubkey"],
            created_at=obj["created_at"],
            kind=obj["kind"],
            tags=obj["tags"],
            content=obj["content"],
            sig=obj["sig"],
        )
        size = len(event.to_json().encode("utf-8", "surrogatepass"))
        if size > MAX_EVENT_BYTES:
            raise EventError(f"event is {size} bytes, limit is {MAX_EVENT_BYTES}")
        return event

    @classmethod
    def from_json(cls, text: str | bytes) -> NostrEvent:
        """Parse one event from JSON text (UTF-8 bytes or str).

        Raises:
            EventError: not JSON, not UTF-8, oversized, or any :meth:`from_dict` failure.
        """
        try:
            obj = decode_bounded(text, MAX_EVENT_BYTES, "event")
        except JsonBoundError as exc:
            raise EventError(str(exc)) from None
        return cls.from_dict(obj)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": _tags_as_lists(self.tags),
            "content": self.content,
            "sig": self.sig,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    # -- checks ----------------------------------------------------------------------

    def compute_id(self) -> str:
        return compute_id(self.pubkey, self.created_at, self.kind, self.tags, self.content)

    def check(self) -> None:
        """Raise :class:`EventError` unless the id matches and the signature is valid.

        Order per docs/threat-model.md §nostr-events: id recompute (cheap sha256) before Schnorr
        verify.
        """
        computed = self.compute_id()
        if computed != self.id:
            raise EventIdMismatch(f"event id does not match its content (computed {computed})")
        if not verify_signature(self.pubkey, bytes.fromhex(self.id), self.sig):
            raise InvalidSignature("event signature is invalid")

    def verify(self) -> bool:
        """``True`` iff the id matches the content and the BIP-340 signature is valid."""
        try:
            self.check()
        except EventError:
            return False
        return True

    # -- tag helpers -----------------------------------------------------------------

    def tag_values(self, name: str) -> list[str]:
        """Second element of every tag named ``name`` (tags with only a name are skipped)."""
        return [t[1] for t in self.tags if t[0] == name and len(t) > 1]

    def first_tag_value(self, name: str) -> str | None:
        for t in self.tags:
            if t[0] == name and len(t) > 1:
                return t[1]
        return None


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return _type_name(value)
