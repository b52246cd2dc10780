"""Sans-IO NIP-01 (and NIP-42) message codec: text in → typed messages, typed values → text.

Relay → client frames (NIP-01 "From relay to client"): ``EVENT``, ``OK``, ``EOSE``,
``CLOSED``, ``NOTICE``, plus NIP-42 ``AUTH``. Anything else, or any frame with the wrong
arity or types, raises :class:`RelayProtocolError` with a message naming the problem.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from relay_client.event import EventError, NostrEvent, UnsignedEvent
from relay_client.jsonbound import JsonBoundError, decode_bounded

logger = logging.getLogger(__name__)

__all__ = [
    "AUTH_KIND",
    "MAX_CHALLENGE_LENGTH",
    "MAX_FRAME_BYTES",
    "MAX_SUBSCRIPTION_ID_LENGTH",
    "Auth",
    "Closed",
    "Eose",
    "EventMessage",
    "Filter",
    "InvalidEventMessage",
    "Notice",
    "Ok",
    "RelayMessage",
    "RelayProtocolError",
    "any_filter_matches",
    "auth_message",
    "build_auth_event",
    "close_message",
    "event_message",
    "filter_matches",
    "parse_relay_message",
    "req_message",
]

#: docs/threat-model.md §nostr-relays: inbound frames above 256 KiB are refused (also websockets
#: ``max_size``).
MAX_FRAME_BYTES = 256 * 1024
#: NIP-01: a subscription id is a non-empty string of at most 64 characters.
MAX_SUBSCRIPTION_ID_LENGTH = 64
#: NIP-42 sets no bound; a challenge is a nonce, so anything longer is abuse.
MAX_CHALLENGE_LENGTH = 1024
#: NIP-42: the client's authentication event kind.
AUTH_KIND = 22242

#: A NIP-01 filter (``ids``, ``authors``, ``kinds``, ``#x``, ``since``, ``until``, ``limit``).
Filter = Mapping[str, object]


class RelayProtocolError(ValueError):
    """A relay sent a frame that is not a valid NIP-01/NIP-42 message."""


class InvalidEventMessage(RelayProtocolError):
    """A well-formed ``EVENT`` frame whose event fails schema validation."""

    def __init__(self, subscription_id: str, reason: str) -> None:
        super().__init__(f"EVENT frame carries an invalid event: {reason}")
        self.subscription_id = subscription_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EventMessage:
    subscription_id: str
    event: NostrEvent


@dataclass(frozen=True, slots=True)
class Ok:
    event_id: str
    accepted: bool
    message: str

    @property
    def prefix(self) -> str:
        """Machine-readable prefix (``duplicate``, ``auth-required``, …) or ``""``."""
        return _prefix(self.message)


@dataclass(frozen=True, slots=True)
class Eose:
    subscription_id: str


@dataclass(frozen=True, slots=True)
class Closed:
    subscription_id: str
    message: str

    @property
    def prefix(self) -> str:
        return _prefix(self.message)


@dataclass(frozen=True, slots=True)
class Notice:
    message: str


@dataclass(frozen=True, slots=True)
class Auth:
    challenge: str


RelayMessage = EventMessage | Ok | Eose | Closed | Notice | Auth


def _prefix(message: str) -> str:
    head, sep, _ = message.partition(":")
    return head if sep and " " not in head else ""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _expect_arity(kind: str, frame: list[object], n: int) -> None:
    if len(frame) != n:
        raise RelayProtocolError(f"{kind} frame must have {n} elements, got {len(frame)}")


def _expect_str(kind: str, what: str, value: object) -> str:
    if not isinstance(value, str):
        raise RelayProtocolError(f"{kind} {what} must be a string, got {_json_type(value)}")
    return value


def _expect_sub_id(kind: str, value: object) -> str:
    sub_id = _expect_str(kind, "subscription id", value)
    if not 1 <= len(sub_id) <= MAX_SUBSCRIPTION_ID_LENGTH:
        raise RelayProtocolError(
            f"{kind} subscription id must be 1..{MAX_SUBSCRIPTION_ID_LENGTH} characters, "
            f"got {len(sub_id)}"
        )
    return sub_id


def parse_relay_message(frame: str | bytes) -> RelayMessage:
    """Parse one relay → client WebSocket frame.

    Args:
        frame: the text (or UTF-8 bytes) of one WebSocket message.

    Returns:
        One of :class:`EventMessage`, :class:`Ok`, :class:`Eose`, :class:`Closed`,
        :class:`Notice`, :class:`Auth`. Events are schema-validated here; their id and
        signature are NOT checked (call :meth:`NostrEvent.check`).

    Raises:
        InvalidEventMessage: an ``EVENT`` frame whose event is malformed.
        RelayProtocolError: anything else malformed (size, JSON, arity, types, type name).
    """
    try:
        data = decode_bounded(frame, MAX_FRAME_BYTES, "frame")
    except JsonBoundError as exc:
        raise RelayProtocolError(str(exc)) from None
    if not isinstance(data, list):
        raise RelayProtocolError(f"frame must be a JSON array, got {_json_type(data)}")
    if not data:
        raise RelayProtocolError("frame is an empty array")
    kind = data[0]
    if not isinstance(kind, str):
        raise RelayProtocolError(f"message type must be a string, got {_json_type(kind)}")

    parse = _PARSERS.get(kind)
    if parse is None:
        shown = kind if len(kind) <= 20 else kind[:17] + "..."
        raise RelayProtocolError(f"unknown message type {shown!r}")
    return parse(data)


def _parse_event(data: list[object]) -> RelayMessage:
    _expect_arity("EVENT", data, 3)
    sub_id = _expect_sub_id("EVENT", data[1])
    try:
        event = NostrEvent.from_dict(data[2])
    except EventError as exc:
        raise InvalidEventMessage(sub_id, str(exc)) from exc
    return EventMessage(sub_id, event)


def _parse_ok(data: list[object]) -> RelayMessage:
    # NIP-01: "The 4th parameter MUST always be present".
    _expect_arity("OK", data, 4)
    event_id = _expect_str("OK", "event id", data[1])
    if len(event_id) != 64 or any(c not in "0123456789abcdef" for c in event_id):
        raise RelayProtocolError("OK event id must be 64 lowercase hex characters")
    accepted = data[2]
    if not isinstance(accepted, bool):
        raise RelayProtocolError(f"OK status must be a boolean, got {_json_type(accepted)}")
    return Ok(event_id, accepted, _expect_str("OK", "message", data[3]))


def _parse_eose(data: list[object]) -> RelayMessage:
    _expect_arity("EOSE", data, 2)
    return Eose(_expect_sub_id("EOSE", data[1]))


def _parse_closed(data: list[object]) -> RelayMessage:
    _expect_arity("CLOSED", data, 3)
    return Closed(_expect_sub_id("CLOSED", data[1]), _expect_str("CLOSED", "message", data[2]))


def _parse_notice(data: list[object]) -> RelayMessage:
    _expect_arity("NOTICE", data, 2)
    return Notice(_expect_str("NOTICE", "message", data[1]))


def _parse_auth(data: list[object]) -> RelayMessage:
    _expect_arity("AUTH", data, 2)
    challenge = _expect_str("AUTH", "challenge", data[1])
    if not 1 <= len(challenge) <= MAX_CHALLENGE_LENGTH:
        raise RelayProtocolError(
            f"AUTH challenge must be 1..{MAX_CHALLENGE_LENGTH} characters, got {len(challenge)}"
        )
    return Auth(challenge)


# One parser per relay → client message type (NIP-01, NIP-42 for AUTH).
_PARSERS: dict[str, Callable[[list[object]], RelayMessage]] = {
    "EVENT": _parse_event,
    "OK": _parse_ok,
    "EOSE": _parse_eose,
    "CLOSED": _parse_closed,
    "NOTICE": _parse_notice,
    "AUTH": _parse_auth,
}

# -- client → relay -----------------------------------------------------------------------


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_sub_id(sub_id: str) -> None:
    if not isinstance(sub_id, str) or not 1 <= len(sub_id) <= MAX_SUBSCRIPTION_ID_LENGTH:
        raise ValueError(
            f"subscription id must be a string of 1..{MAX_SUBSCRIPTION_ID_LENGTH} characters"
        )


def event_message(event: NostrEvent) -> str:
    """``["EVENT", <event>]``."""
    return _dumps(["EVENT", event.to_dict()])


def req_message(subscription_id: str, *filters: Filter) -> str:
    """``["REQ", <subscription_id>, <filter>, …]`` (at least one filter)."""
    _check_sub_id(subscription_id)
    if not filters:
        raise ValueError("REQ needs at least one filter")
    return _dumps(["REQ", subscription_id, *(dict(f) for f in filters)])


def close_message(subscription_id: str) -> str:
    """``["CLOSE", <subscription_id>]``."""
    _check_sub_id(subscription_id)
    return _dumps(["CLOSE", subscription_id])


def auth_message(event: NostrEvent) -> str:
    """NIP-42 ``["AUTH", <signed kind-22242 event>]``."""
    if event.kind != AUTH_KIND:
        raise ValueError(f"AUTH needs a kind {AUTH_KIND} event, got kind {event.kind}")
    return _dumps(["AUTH", event.to_dict()])


def build_auth_event(
    relay_url: str, challenge: str, created_at: int | None = None
) -> UnsignedEvent:
    """NIP-42 authentication event: kind 22242 with ``relay`` and ``challenge`` tags.

    ``created_at`` defaults to now (NIP-42: relays accept roughly ±10 minutes).
    """
    return UnsignedEvent(
        kind=AUTH_KIND,
        content="",
        tags=(("relay", relay_url), ("challenge", challenge)),
        created_at=int(time.time()) if created_at is None else created_at,
    )


# -- filters ------------------------------------------------------------------------------


def _list_of(flt: Filter, key: str) -> Sequence[object] | None:
    value = flt.get(key)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return value
    return [value]


def filter_matches(flt: Filter, event: NostrEvent) -> bool:
    """NIP-01 filter semantics: all given conditions must hold (``limit`` is ignored)."""
    ids = _list_of(flt, "ids")
    if ids is not None and event.id not in ids:
        return False
    authors = _list_of(flt, "authors")
    if authors is not None and event.pubkey not in authors:
        return False
    kinds = _list_of(flt, "kinds")
    if kinds is not None and event.kind not in kinds:
        return False
    since = flt.get("since")
    if isinstance(since, int) and event.created_at < since:
        return False
    until = flt.get("until")
    if isinstance(until, int) and event.created_at > until:
        return False
    for key in flt:
        if len(key) == 2 and key[0] == "#" and key[1].isascii() and key[1].isalpha():
            wanted = _list_of(flt, key) or []
            name = key[1]
            if not any(t[0] == name and len(t) > 1 and t[1] in wanted for t in event.tags):
                return False
    return True


def any_filter_matches(filters: Sequence[Filter], event: NostrEvent) -> bool:
    """NIP-01: multiple filters in one REQ are OR-ed."""
    return any(filter_matches(f, event) for f in filters)
