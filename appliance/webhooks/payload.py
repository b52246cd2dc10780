"""Pure webhook helpers: URL and event-name validation, the payload, its signature.

The wire format (docs/webhooks.md): a JSON ``POST`` with body
``{"id", "type", "created_at", "text", "content", "data"}`` and the headers
``Hearth-Webhook-Id``, ``Hearth-Webhook-Timestamp`` and
``Hearth-Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``.
``text`` (generic), ``content`` (Discord) and ``title``/``message`` (Gotify) carry the same
readable summary. The ``id`` is minted once when the delivery is committed and never changes across
retries or restarts, so a receiver dedupes on it.

Every validator here raises :class:`WebhookError` and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from appliance.api.schema import WEBHOOK_EVENTS, WebhookEventType

MAX_URL_CHARS = 2048
"""Longest endpoint URL accepted (docs/threat-model.md §admin-socket)."""
MAX_SUMMARY_CHARS = 1800
"""Longest ``text``/``content`` summary (Discord refuses content over 2000 characters)."""
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"


class WebhookError(ValueError):
    """A webhook URL, event name or signature input does not fit (the message says why)."""


def validate_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL with a host, no credentials, no fragment,
    no whitespace or control characters, at most :data:`MAX_URL_CHARS` long."""
    if not isinstance(url, str):
        raise WebhookError("url must be a string")
    if not url:
        raise WebhookError("url is empty")
    if len(url) > MAX_URL_CHARS:
        raise WebhookError(f"url longer than {MAX_URL_CHARS} characters")
    if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        raise WebhookError("url contains whitespace or control characters")
    if not url.isascii():
        raise WebhookError("url must be ASCII (percent-encode or punycode other characters)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
        host = parts.hostname
    except ValueError as exc:
        raise WebhookError(f"url is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("url must start with http:// or https://")
    if not host:
        raise WebhookError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("url must not carry credentials (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise WebhookError("url must not have a #fragment")
    if port == 0:
        raise WebhookError("url port must not be 0")
    return url


def parse_events(names: Iterable[object]) -> list[str]:
    """Validated, de-duplicated event names in canonical order; empty means every event."""
    wanted: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise WebhookError("event names must be strings")
        if name not in WEBHOOK_EVENTS:
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise WebhookError(f"unknown event {shown!r} (known: {', '.join(WEBHOOK_EVENTS)})")
        wanted.add(name)
    return [e for e in WEBHOOK_EVENTS if e in wanted]


def wants(events: Iterable[str], event_type: str) -> bool:
    """Does an endpoint with filter ``events`` (empty = all) get ``event_type``?
    ``webhook.test`` goes to the endpoint it was asked for, whatever its filter."""
    filt = list(events)
    return event_type == WebhookEventType.TEST or not filt or event_type in filt


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, hex (64 characters), prefixed ``whsec_``."""
    return "whsec_" + secrets.token_hex(SECRET_BYTES)


def build_body(delivery_id: str, event_type: str, created_at: int, summary: str,
               data: Mapping[str, Any]) -> str:
    """The JSON body, serialised once at enqueue (retries send these exact bytes)."""
    text = summary[:MAX_SUMMARY_CHARS]
    body = {"id": delivery_id, "type": event_type, "created_at": created_at, "text": text,
            "content": text, "title": f"Hearth: {event_type}", "message": text,
            "data": dict(data)}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``."""
    if not isinstance(secret, str) or not secret:
        raise WebhookError("secret is empty")
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def headers(delivery_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Hearth-Webhooks/1",
        "Hearth-Webhook-Id": delivery_id,
        "Hearth-Webhook-Timestamp": str(timestamp),
        "Hearth-Webhook-Signature": sign(secret, timestamp, body),
    }


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance: float = 300.0) -> bool:
    """The receiver's check (docs/webhooks.md): a signature header may carry several
    space-separated ``v1=`` values (during a secret rotation); the timestamp must be within
    ``tolerance`` seconds of ``now`` (replay window). Constant-time compare."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected.encode(), s.encode())
               for s in signature.split() if s.isascii())


def sanitise_error(text: str, limit: int = 200) -> str:
    """An error or response snippet as stored and shown: printable ASCII, one line, short."""
    out = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text.replace("\n", " "))
    return out[:limit]
