"""Signed, expiring access tokens (viewer grants, and any other link that carries a right).

Pure functions, no I/O: :class:`appliance.access.service.AccessService` holds the secret and
the revocation epochs; this module only builds and checks strings.

Format (ASCII, at most :data:`MAX_TOKEN_CHARS`, safe in a URL query, a cookie value and an
``Authorization: Bearer`` header)::

    v1.<purpose>.<channel id>.<broadcast id or _>.<expires>.<epoch>.<mac>

* ``purpose``: what the token allows, ``[a-z]{1,16}`` (``watch`` for viewer grants). A token
  made for one purpose is never accepted for another, so other features (an owner link for
  analytics, say) can sign with the same secret without widening viewer grants.
* ``channel id`` / ``broadcast id``: the scope (``_``: every broadcast of the channel).
* ``expires``: Unix seconds; the token is refused from that second on.
* ``epoch``: the channel's revocation counter when the token was made; bumping it (``hearth
  grant revoke-all``) invalidates every older token of the channel at once.
* ``mac``: HMAC-SHA256 (RFC 2104) with the server secret over everything before the last
  ``.``, base64url without padding (43 characters).

:func:`parse_token` checks the shape first (bounded length, strict patterns, no
allocation driven by the input), then the MAC in constant time (``hmac.compare_digest``),
then expiry against the caller's clock. It raises only :class:`TokenError`; the message
names the failed check but never echoes the token (tokens are never logged:
docs/threat-model.md §grants).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

VERSION = "v1"
MAX_TOKEN_CHARS = 200
"""Longest token accepted (a real one is about 110 characters)."""
SECRET_BYTES = 32
PURPOSE_RE = re.compile(r"^[a-z]{1,16}$")
_ID_RE = re.compile(r"^[a-z0-9]{6,32}$")
_NUM_RE = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_MAC_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
NO_BROADCAST = "_"


class TokenError(ValueError):
    """The token is malformed, forged, of another purpose, or expired."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token says. ``broadcast_id`` None: every broadcast of ``channel_id``."""

    purpose: str
    channel_id: str
    broadcast_id: str | None
    expires: int
    epoch: int = 0


def new_secret() -> bytes:
    """A fresh server secret (256 random bits)."""
    return secrets.token_bytes(SECRET_BYTES)


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_token(secret: bytes, grant: Grant) -> str:
    """The token for ``grant``. Raises :class:`TokenError` if a field cannot be encoded."""
    if len(secret) < 16:
        raise TokenError("secret too short")
    if not PURPOSE_RE.fullmatch(grant.purpose):
        raise TokenError("bad purpose")
    if not _ID_RE.fullmatch(grant.channel_id):
        raise TokenError("bad channel id")
    if grant.broadcast_id is not None and not _ID_RE.fullmatch(grant.broadcast_id):
        raise TokenError("bad broadcast id")
    if not 0 <= grant.expires < 10**12 or not 0 <= grant.epoch < 10**12:
        raise TokenError("expiry or epoch out of range")
    payload = ".".join((VERSION, grant.purpose, grant.channel_id,
                        grant.broadcast_id or NO_BROADCAST, str(grant.expires), str(grant.epoch)))
    return f"{payload}.{_mac(secret, payload)}"


def parse_token(secret: bytes, token: str, *, now: float, purpose: str) -> Grant:
    """Check ``token`` (shape, MAC, purpose, expiry at ``now``) and return what it grants.

    Raises:
        TokenError: for anything but a genuine, unexpired token of ``purpose``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed token")
    parts = token.split(".")
    if len(parts) != 7 or parts[0] != VERSION:
        raise TokenError("malformed token")
    _, kind, channel, broadcast, expires, epoch, mac = parts
    if not (PURPOSE_RE.fullmatch(kind) and _ID_RE.fullmatch(channel)
            and (broadcast == NO_BROADCAST or _ID_RE.fullmatch(broadcast))
            and _NUM_RE.fullmatch(expires) and _NUM_RE.fullmatch(epoch)
            and _MAC_RE.fullmatch(mac)):
        raise TokenError("malformed token")
    payload = token[: -len(mac) - 1]
    if not hmac.compare_digest(_mac(secret, payload), mac):
        raise TokenError("bad signature")
    if kind != purpose:
        raise TokenError("token is for something else")
    grant = Grant(purpose=kind, channel_id=channel,
                  broadcast_id=None if broadcast == NO_BROADCAST else broadcast,
                  expires=int(expires), epoch=int(epoch))
    if now >= grant.expires:
        raise TokenError("token expired")
    return grant


__all__ = ["MAX_TOKEN_CHARS", "Grant", "TokenError", "new_secret", "parse_token",
           "sign_token"]
