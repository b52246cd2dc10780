"""Channel passwords: scrypt (RFC 7914) digests, constant-time comparison.

A password is human-chosen (low entropy), unlike stream keys, so it gets a slow, salted,
memory-hard hash (``hashlib.scrypt``, N=2^14, r=8, p=1: ~16 MiB and tens of milliseconds per
check). Callers run :func:`hash_password` and :func:`password_matches` off the event loop
(``asyncio.to_thread``); guesses are limited per address before either is called
(docs/threat-model.md §grants).

Stored form: ``scrypt$<N>$<r>$<p>$<salt b64>$<digest b64>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
DKLEN = 32
MIN_CHARS = 6
MAX_CHARS = 1024
_MAXMEM = 64 * 1024 * 1024


class PasswordError(ValueError):
    """A password that cannot be set (too short, too long, control characters)."""


def check_new_password(password: str) -> str:
    """``password`` if it may be set; raises :class:`PasswordError`."""
    if not isinstance(password, str):
        raise PasswordError("the password must be text")
    if len(password) < MIN_CHARS:
        raise PasswordError(f"at least {MIN_CHARS} characters")
    if len(password) > MAX_CHARS:
        raise PasswordError(f"at most {MAX_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise PasswordError("no control characters")
    return password


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=_MAXMEM, dklen=DKLEN)


def hash_password(password: str) -> str:
    """A salted scrypt digest of a checked password (slow: call off the loop)."""
    check_new_password(password)
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, N, R, P)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    """Constant-time check of a presented password against :func:`hash_password`'s output.

    Any presented text is hashed (bounded to :data:`MAX_CHARS` first), so a wrong length or a
    malformed stored value answers False, never raises.
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or (int(n), int(r), int(p)) != (N, R, P):
            return False
        salt_b, digest_b = base64.b64decode(salt), base64.b64decode(digest)
    except (ValueError, TypeError):
        return False
    if not isinstance(password, str):
        return False
    # Too long to have been set: still hash (a bounded prefix) so the time taken is the same.
    got = _derive(password[:MAX_CHARS], salt_b, N, R, P)
    return hmac.compare_digest(got, digest_b) and len(password) <= MAX_CHARS
