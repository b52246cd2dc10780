"""Nostr client library (NIP-01, NIP-09, NIP-19, NIP-42, NIP-53, NIP-57 amounts).

Imports nothing else of Hearth. Pure codecs (:mod:`~relay_client.event`,
:mod:`~relay_client.messages`, :mod:`~relay_client.nip19`, :mod:`~relay_client.live`) plus
a sans-IO relay session (:mod:`~relay_client.session`) under a thin websockets loop
(:mod:`~relay_client.pool`). Import order is one-way: ``jsonbound``/``schnorr`` ← ``event`` ←
``messages``/``signing`` ← ``session`` ← ``pool``.
"""

from __future__ import annotations

from relay_client.event import (
    MAX_EVENT_BYTES,
    MAX_TAGS,
    EventError,
    EventIdMismatch,
    InvalidSignature,
    NostrEvent,
    UnsignedEvent,
    compute_id,
    serialize_for_id,
)
from relay_client.live import (
    activity_address,
    bolt11_amount_msats,
    build_chat_message,
    build_deletion,
    build_live_event,
    chat_activity_address,
    parse_activity_address,
    parse_zap_amount_msats,
)
from relay_client.messages import (
    MAX_FRAME_BYTES,
    Auth,
    Closed,
    Eose,
    EventMessage,
    Filter,
    InvalidEventMessage,
    Notice,
    Ok,
    RelayMessage,
    RelayProtocolError,
    auth_message,
    build_auth_event,
    close_message,
    event_message,
    filter_matches,
    parse_relay_message,
    req_message,
)
from relay_client.nip19 import NAddr, NEvent, Nip19Error, NProfile
from relay_client.pool import (
    PoolConfig,
    PublishResult,
    RelayPool,
    RelayPublishResult,
    RelayState,
    RelayStatus,
)
from relay_client.signing import (
    AsyncSigner,
    PrivateKeySigner,
    Signer,
    SigningError,
    generate_private_key,
    verify_signature,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_TAGS",
    "AsyncSigner",
    "Auth",
    "Closed",
    "Eose",
    "EventError",
    "EventIdMismatch",
    "InvalidSignature",
    "EventMessage",
    "Filter",
    "InvalidEventMessage",
    "NAddr",
    "NEvent",
    "NProfile",
    "Nip19Error",
    "NostrEvent",
    "Notice",
    "Ok",
    "PoolConfig",
    "PrivateKeySigner",
    "PublishResult",
    "RelayMessage",
    "RelayPool",
    "RelayProtocolError",
    "RelayPublishResult",
    "RelayState",
    "RelayStatus",
    "Signer",
    "SigningError",
    "UnsignedEvent",
    "activity_address",
    "auth_message",
    "bolt11_amount_msats",
    "build_auth_event",
    "build_chat_message",
    "build_deletion",
    "build_live_event",
    "chat_activity_address",
    "close_message",
    "compute_id",
    "event_message",
    "filter_matches",
    "generate_private_key",
    "parse_activity_address",
    "parse_relay_message",
    "parse_zap_amount_msats",
    "req_message",
    "serialize_for_id",
    "verify_signature",
]
